# FaPN Table 1, row "FPN + FAM" (paper: 31.7M params, 79.7 mIoU): FAM before
# fusion, plain 1x1 laterals instead of FSM.
_base_ = ['../pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py']
model = dict(neck=dict(lateral='conv', align='fam'))
