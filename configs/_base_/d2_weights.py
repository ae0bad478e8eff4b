# detectron2's inference setting for the released FaPN checkpoints, shared
# by every `*_d2-weights.py` config (see
# docs/user_guides/checkpoint_conversion.md and mmfapn/utils/d2_convert.py).
# Only variables are defined here
# (mmengine forbids a key such as `model` in two bases); the configs use them
# as `{{_base_.d2_...}}`.

# MSRA (caffe) ResNet: stride in the 1x1 conv, FrozenBN (eps 1e-5, as
# mmcv's BN), every weight comes from the converted checkpoint.
d2_backbone = dict(
    style='caffe',
    norm_cfg=dict(type='BN', requires_grad=False),
    norm_eval=True,
    init_cfg=None)

# detectron2's MODEL.PIXEL_MEAN / PIXEL_STD for MSRA weights, BGR input.
d2_data_preprocessor = dict(
    mean=[103.530, 116.280, 123.675], std=[1.0, 1.0, 1.0], bgr_to_rgb=False)

# detectron2 defaults: RPN PRE_NMS_TOPK_TEST 1000 per level, NMS 0.7,
# POST_NMS_TOPK_TEST 1000; ROI_HEADS SCORE_THRESH_TEST 0.05,
# NMS_THRESH_TEST 0.5 (per class), DETECTIONS_PER_IMAGE 100 (the stock mmdet
# mask configs already binarise masks at 0.5, as detectron2).
d2_rpn_test_cfg = dict(
    nms_pre=1000,
    max_per_img=1000,
    nms=dict(type='nms', iou_threshold=0.7),
    min_bbox_size=0)
d2_rcnn_test_cfg = dict(
    score_thr=0.05,
    nms=dict(type='nms', iou_threshold=0.5, class_agnostic=False),
    max_per_img=100)
