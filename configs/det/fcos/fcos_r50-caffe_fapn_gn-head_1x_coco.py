# FCOS R-50 (caffe) + FaPN, GN head, 1x schedule (12 epochs), COCO.
# The stock mmdet config with FPN replaced by FaPN; everything else is the
# base's.  As in the base, the pyramid starts at C3 (start_level=1: FAMs on
# C4 and C3 only) and P6/P7 come from stride-2 convs on the top output
# (add_extra_convs='on_output', a ReLU before P7): FaPN's top output is its
# bare 1x1 lateral of C5.
_base_ = [
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    '../_base_/fapn_det.py'
]
model = dict(neck=dict(type='FaPN'))
