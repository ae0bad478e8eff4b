# Evaluation config for the released detectron2 checkpoint
# panoptic_fan_R_101_3x (paper: PQ 44.2); see the R-50 one.
_base_ = [
    './panoptic-fpn_r101_fapn_ms-3x_coco.py', '../../_base_/d2_weights.py'
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
