# PointRend (semantic) R-50 + FaPN, mmseg's recipe: the stock mmseg config
# with its FPN neck replaced by FaPN (FaPN takes FPN's arguments, so the
# base's in_channels/out_channels/num_outs are kept).
_base_ = [
    'mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/mmfapn.py'
]
model = dict(neck=dict(type='FaPN'))
