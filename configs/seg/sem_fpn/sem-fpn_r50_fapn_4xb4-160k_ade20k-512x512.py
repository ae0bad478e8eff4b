# Semantic FPN R-50 + FaPN on ADE20K: mmseg's config with its FPN neck
# replaced by FaPN.
_base_ = [
    'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',
    '../../_base_/mmfapn.py'
]
model = dict(neck=dict(type='FaPN'))
