# Panoptic FPN R-50 + FaPN, 1x schedule, COCO panoptic.
# The stock mmdet config with FPN replaced by FaPN; everything else
# (backbone, heads, data, schedule) is the base's, so the comparison is
# FPN vs FaPN and nothing else.
_base_ = [
    'mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py',
    '../_base_/fapn_det.py'
]
model = dict(neck=dict(type='FaPN'))
