# FaPN Table 1, row "FPN" (R50; paper: 28.6M params, 77.4 mIoU): the paper
# recipe of the FaPN config with the stock FPN neck back in place.
_base_ = ['../pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py']
model = dict(neck=dict(type='FPN'))
