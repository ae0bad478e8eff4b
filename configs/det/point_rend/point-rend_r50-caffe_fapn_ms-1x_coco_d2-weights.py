# Evaluation config for the released detectron2 checkpoint
# pointrend_rcnn_R_50_FAN_1x_coco (paper: mask/box AP 37.6/39.4), converted
# with tools/model_converters/d2_fapn_to_mmdet.py.  The base is already
# caffe-style with detectron2's pixel statistics; this adds no ImageNet
# initialisation and detectron2's RPN/RoI thresholds.  PointRend's
# subdivision inference (5 steps, 28 x 28 points) is the base's, as in
# detectron2.  Not for training.
_base_ = [
    './point-rend_r50-caffe_fapn_ms-1x_coco.py', '../../_base_/d2_weights.py'
]
model = dict(
    data_preprocessor={{_base_.d2_data_preprocessor}},
    backbone={{_base_.d2_backbone}},
    test_cfg=dict(rpn={{_base_.d2_rpn_test_cfg}},
                  rcnn={{_base_.d2_rcnn_test_cfg}}))
