# FaPN Table 1, row "FPN + FAM(after fusion) + FSM" (paper: 32.7M params,
# 79.3 mIoU): FSM laterals; the FAM aligns the fused map lat + up(prev),
# predicting its offsets from that map (no 1x1 offset conv).
_base_ = ['../pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py']
model = dict(neck=dict(lateral='fsm', align='fam_after_fusion'))
