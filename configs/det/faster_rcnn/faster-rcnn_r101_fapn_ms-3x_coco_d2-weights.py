# Evaluation config for the released detectron2 checkpoint
# faster_rcnn_R_101_FAN_3x (paper: box AP 42.8); see the R-50 one.
_base_ = [
    './faster-rcnn_r101_fapn_ms-3x_coco.py', '../../_base_/d2_weights.py'
]
model = dict(
    data_preprocessor={{_base_.d2_data_preprocessor}},
    backbone={{_base_.d2_backbone}},
    test_cfg=dict(rpn={{_base_.d2_rpn_test_cfg}},
                  rcnn={{_base_.d2_rcnn_test_cfg}}))
