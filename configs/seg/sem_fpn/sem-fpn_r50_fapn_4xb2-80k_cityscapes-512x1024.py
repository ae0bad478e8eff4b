# Semantic FPN R-50 + FaPN on Cityscapes: mmseg's config with its FPN neck
# replaced by FaPN (FPN's in_channels/out_channels/num_outs are kept).
_base_ = [
    'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/mmfapn.py'
]
model = dict(neck=dict(type='FaPN'))
