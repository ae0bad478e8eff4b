# PointRend (semantic) R-50 + FaPN, the paper's recipe (FaPN supplement §1,
# detectron2's pointrend_semantic_R_101_FPN_1x_cityscapes.yaml):
# batch 32 (8 GPUs x 4), 65K iterations, SGD lr 0.01 momentum 0.9 weight
# decay 1e-4 (none on norm layers), lr / 10 at 40K and 55K after a 1000-iter
# linear warm-up, frozen ImageNet BN in the backbone (stem + res2 frozen),
# random short side in {512, 768, ..., 2048} (max 4096), 512x1024 crop,
# flip, photometric distortion.  Kept from mmseg: the ResNet-V1c backbone and
# its ImageNet weights, the FPNHead/PointHead (SyncBN) heads.
_base_ = './pointrend_r50_fapn_4xb2-80k_cityscapes-512x1024.py'

model = dict(
    backbone=dict(
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        frozen_stages=1))

crop_size = (512, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomChoiceResize',
        scales=[512, 768, 1024, 1280, 1536, 1792, 2048],
        resize_type='ResizeShortestEdge',
        max_size=4096),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    optimizer=dict(lr=0.01, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0))
max_iters = 65000
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.001,
        by_epoch=False,
        begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        milestones=[40000, 55000],
        gamma=0.1,
        by_epoch=False,
        begin=0,
        end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=5000)
default_hooks = dict(checkpoint=dict(interval=5000))
# 8 GPUs x 4 images: lets mmengine's auto_scale_lr rescale lr elsewhere
auto_scale_lr = dict(enable=False, base_batch_size=32)
