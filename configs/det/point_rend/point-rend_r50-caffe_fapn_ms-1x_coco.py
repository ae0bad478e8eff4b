# PointRend (instance) R-50-caffe + FaPN, multi-scale 1x, COCO.
# The stock mmdet config with FPN replaced by FaPN; everything else
# (backbone, heads, data, schedule) is the base's, so the comparison is
# FPN vs FaPN and nothing else.
_base_ = [
    'mmdet::point_rend/point-rend_r50-caffe_fpn_ms-1x_coco.py',
    '../_base_/fapn_det.py'
]
model = dict(neck=dict(type='FaPN'))
