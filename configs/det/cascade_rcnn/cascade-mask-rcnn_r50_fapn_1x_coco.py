# Cascade Mask R-CNN R-50 + FaPN, 1x schedule (12 epochs), COCO.
# The stock mmdet config with FPN replaced by FaPN; everything else
# (backbone, RPN, the three cascade stages, mask heads, data, schedule) is
# the base's, so the comparison is FPN vs FaPN and nothing else.
_base_ = [
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/fapn_det.py'
]
model = dict(neck=dict(type='FaPN'))
