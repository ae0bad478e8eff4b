# Mask R-CNN R-101 + FaPN, multi-scale 3x schedule with polygon masks, COCO.
# The stock mmdet config with FPN replaced by FaPN; everything else
# (backbone, heads, data, schedule) is the base's, so the comparison is
# FPN vs FaPN and nothing else.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r101_fpn_ms-poly-3x_coco.py',
    '../_base_/fapn_det.py'
]
model = dict(neck=dict(type='FaPN'))
