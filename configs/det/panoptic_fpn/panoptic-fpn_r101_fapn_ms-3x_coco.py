# Panoptic FPN R-101 + FaPN, multi-scale 3x schedule, COCO panoptic.
# The stock mmdet config with FPN replaced by FaPN; everything else
# (backbone, heads, data, schedule) is the base's, so the comparison is
# FPN vs FaPN and nothing else.
_base_ = [
    'mmdet::panoptic_fpn/panoptic-fpn_r101_fpn_ms-3x_coco.py',
    '../_base_/fapn_det.py'
]
model = dict(neck=dict(type='FaPN'))
