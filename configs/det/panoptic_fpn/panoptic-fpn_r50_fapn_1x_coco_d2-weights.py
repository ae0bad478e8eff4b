# Evaluation config for the released detectron2 checkpoint
# panoptic_fan_R_50_1x (paper: PQ 41.1), converted with
# tools/model_converters/d2_fapn_to_mmdet.py (the semantic head's "things"
# channel, first in detectron2, is moved last as mmdet expects).
# detectron2's inference setting: MSRA/caffe ResNet with frozen BN, BGR
# input with detectron2's pixel mean and std 1, test scale (1333, 800), RPN
# as detectron2, and its panoptic merge (PANOPTIC_FPN.COMBINE): instances
# with score >= 0.5 after per-class NMS 0.5, overlap 0.5, stuff area >= 4096.
# mmdet applies the 0.5 instance threshold in the RoI head itself, so the
# box/mask AP this config reports is not detectron2's (0.05 threshold); PQ
# is the number to compare.  Not for training.
_base_ = [
    './panoptic-fpn_r50_fapn_1x_coco.py', '../../_base_/d2_weights.py'
]
model = dict(
    data_preprocessor={{_base_.d2_data_preprocessor}},
    backbone={{_base_.d2_backbone}},
    test_cfg=dict(
        rpn={{_base_.d2_rpn_test_cfg}},
        rcnn=dict(
            score_thr=0.5,
            nms=dict(type='nms', iou_threshold=0.5, class_agnostic=False),
            max_per_img=100),
        panoptic=dict(mask_overlap=0.5, stuff_area_limit=4096)))
