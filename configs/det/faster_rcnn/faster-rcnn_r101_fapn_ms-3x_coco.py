# Faster R-CNN R-101 + FaPN, multi-scale 3x schedule (36 epochs), COCO.
# The stock mmdet config with FPN replaced by FaPN; everything else
# (backbone, heads, data, schedule) is the base's, so the comparison is
# FPN vs FaPN and nothing else.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r101_fpn_ms-3x_coco.py',
    '../_base_/fapn_det.py'
]
model = dict(neck=dict(type='FaPN'))
