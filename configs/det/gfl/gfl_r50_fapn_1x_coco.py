# GFL R-50 + FaPN, 1x schedule (12 epochs), COCO.
# The stock mmdet config with FPN replaced by FaPN; everything else is the
# base's.  As in the base, the pyramid starts at C3 (start_level=1: FAMs on
# C4 and C3 only) and P6/P7 come from stride-2 convs on the top output
# (add_extra_convs='on_output'): FaPN's top output is its bare 1x1 lateral
# of C5.
_base_ = [
    'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    '../_base_/fapn_det.py'
]
model = dict(neck=dict(type='FaPN'))
