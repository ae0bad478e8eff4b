# Evaluation config for the released detectron2 checkpoint
# faster_rcnn_R_50_FAN_1x (paper: box AP 39.2), converted with
# tools/model_converters/d2_fapn_to_mmdet.py.  detectron2's inference
# setting: MSRA/caffe ResNet with frozen BN, BGR input with detectron2's
# pixel mean and std 1, test scale (1333, 800) (the base's), detectron2's
# RPN/RoI thresholds.  Not for training (no ImageNet initialisation).
_base_ = [
    './faster-rcnn_r50_fapn_1x_coco.py', '../../_base_/d2_weights.py'
]
model = dict(
    data_preprocessor={{_base_.d2_data_preprocessor}},
    backbone={{_base_.d2_backbone}},
    test_cfg=dict(rpn={{_base_.d2_rpn_test_cfg}},
                  rcnn={{_base_.d2_rcnn_test_cfg}}))
