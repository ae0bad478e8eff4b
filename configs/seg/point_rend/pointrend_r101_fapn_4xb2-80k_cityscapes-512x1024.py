# PointRend (semantic) R-101 + FaPN, mmseg's recipe (see the R-50 config).
_base_ = [
    'mmseg::point_rend/pointrend_r101_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/mmfapn.py'
]
model = dict(neck=dict(type='FaPN'))
