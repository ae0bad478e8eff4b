# Evaluation config for the released detectron2 checkpoint
# pointrend_semantic_R_50_FAN_1x_cityscapes (paper: mIoU 80.0), converted
# with `tools/model_converters/d2_fapn_to_mmdet.py IN OUT --task seg`.
# The model is detectron2's, not mmseg's: MSRA/caffe ResNet with a 7x7 stem
# and frozen BN (mmseg's ResNet, not ResNetV1c), SemSegFPNHead = FPNHead
# with 128 channels and GN(32), the point head without the coarse
# prediction re-fed to every layer (COARSE_PRED_EACH_LAYER False in the
# release), BGR input with detectron2's pixel mean and std 1.  Inference:
# whole image at 1024 x 2048 (the base's test pipeline; detectron2's
# MIN_SIZE_TEST 1024), 2 subdivision steps of 8192 points.  Not for
# training (no ImageNet initialisation).
_base_ = [
    './pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py',
    '../../_base_/d2_weights.py'
]
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor={{_base_.d2_data_preprocessor}},
    backbone=dict(
        type='ResNet',
        style='caffe',
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        init_cfg=None),
    decode_head=[
        dict(
            type='FPNHead',
            in_channels=[256, 256, 256, 256],
            in_index=[0, 1, 2, 3],
            feature_strides=[4, 8, 16, 32],
            channels=128,
            dropout_ratio=-1,
            num_classes=19,
            norm_cfg=norm_cfg,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        dict(
            type='PointHead',
            in_channels=[256],
            in_index=[0],
            channels=256,
            num_fcs=3,
            coarse_pred_each_layer=False,
            dropout_ratio=-1,
            num_classes=19,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
    ],
    test_cfg=dict(
        mode='whole',
        subdivision_steps=2,
        subdivision_num_points=8192,
        scale_factor=2))
