# Evaluation config for the released detectron2 checkpoint
# mask_rcnn_R_101_FAN_3x (paper: mask/box AP 39.6/43.8; the official README
# table says 39.4/43.8); see the R-50 one.
_base_ = [
    './mask-rcnn_r101_fapn_ms-poly-3x_coco.py', '../../_base_/d2_weights.py'
]
model = dict(
    data_preprocessor={{_base_.d2_data_preprocessor}},
    backbone={{_base_.d2_backbone}},
    test_cfg=dict(rpn={{_base_.d2_rpn_test_cfg}},
                  rcnn={{_base_.d2_rcnn_test_cfg}}))
