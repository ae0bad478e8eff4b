# MaskFormer Swin-L (ImageNet-22K, 384x384 pre-training) + FaPN on ADE20K at
# 640x640: the paper's Table 7a model (55.2 / 56.7 mIoU s.s. / m.s.).
#
# mmseg 1.2.2 has no Swin-L MaskFormer config, so this starts from its stock
# Swin-S MaskFormer config (optimizer, schedule, MaskFormer head) and changes
# (1) the backbone to Swin-L in22k-384 exactly as mmseg configures it in
# swin/swin-large-patch4-window12-in22k-384x384-pre_upernet_* and
# mask2former/mask2former_swin-l-in22k-384x384-pre_*: embed_dims 192,
# heads 6/12/24/48, window 12, pre-training size 384, the same checkpoint;
# (2) the data to mmseg's 640x640 ADE20K pipeline (datasets/ade20k_640x640.py),
# the released FaPN-full crop; (3) the pixel decoder to FaPN's.
_base_ = [
    'mmseg::maskformer/maskformer_swin-s_upernet_8xb2-160k_ade20k-512x512.py',
    '../../_base_/mmfapn.py'
]
pretrained = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/swin/swin_large_patch4_window12_384_22k_20220412-6580f57d.pth'  # noqa
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        pretrain_img_size=384,
        embed_dims=192,
        num_heads=[6, 12, 24, 48],
        window_size=12,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(
        in_channels=[192, 384, 768, 1536],
        pixel_decoder=dict(type='mmdet.FaPNPixelDecoder')))

# mmseg's datasets/ade20k_640x640.py pipelines
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(2560, 640),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
