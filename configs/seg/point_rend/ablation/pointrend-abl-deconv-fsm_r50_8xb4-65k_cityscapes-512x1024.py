# FaPN Table 1, row "FPN + deconv + FSM" (paper: 32.7M params, 76.7 mIoU):
# FSM laterals, no FAM; the top-down map is upsampled by a learnable 4x4
# stride-2 transposed conv (bilinear init) instead of interpolation.
_base_ = ['../pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py']
model = dict(neck=dict(lateral='fsm', align='deconv'))
