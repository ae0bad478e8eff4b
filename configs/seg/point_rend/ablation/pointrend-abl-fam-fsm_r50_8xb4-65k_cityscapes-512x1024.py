# FaPN Table 1, row "FPN + FAM + FSM (FaPN)" (paper: 33.1M params, 80.0
# mIoU): the released FaPN; the switches are spelled out for the table.
_base_ = ['../pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py']
model = dict(neck=dict(lateral='fsm', align='fam'))
