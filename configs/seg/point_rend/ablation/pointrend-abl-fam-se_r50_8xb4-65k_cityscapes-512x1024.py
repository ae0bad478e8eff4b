# FaPN Table 1, row "FPN + FAM + SE" (paper: 33.1M params, 78.8 mIoU): the
# FSM without its skip connection (an SE block, then the 1x1 projection).
_base_ = ['../pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py']
model = dict(neck=dict(lateral='se', align='fam'))
