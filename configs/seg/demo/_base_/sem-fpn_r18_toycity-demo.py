# The `make demo` recipe (tools/demo.py): mmseg's Semantic FPN Cityscapes
# config scaled down to train from scratch on a CPU in minutes, on a
# generated Cityscapes-format dataset of
# boundary-heavy synthetic scenes (mmfapn.datasets.write_toy_cityscapes).
# The FPN and FaPN demo configs inherit this file and differ only in the
# neck type.  The recipe (including the offset/mask conv learning-rate
# multiplier of configs/_base_/fapn_offset_lr.py) was chosen on the
# validation split; docs/demo.md gives the protocol and the evidence.
_base_ = [
    'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py',
    '../../../_base_/mmfapn.py', '../../../_base_/fapn_offset_lr.py'
]
image_size = (128, 256)  # (h, w) of the generated images (tools/demo.py)
crop_size = (64, 128)  # (h, w) training crop: a quarter of an image
norm_cfg = dict(type='BN', requires_grad=True)  # one process, no SyncBN
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # nothing can be downloaded: train from scratch
    backbone=dict(
        depth=18,
        # half-width ResNet-18 (C2..C5: 32, 64, 128, 256 channels)
        stem_channels=32,
        base_channels=32,
        norm_cfg=norm_cfg,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    decode_head=dict(
        in_channels=[64, 64, 64, 64],
        channels=64,
        # Cityscapes' 19 train ids; the scenes use the first few
        norm_cfg=norm_cfg))

data_root = 'work_dirs/demo/data/toycity'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(256, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    # no PhotoMetricDistortion: a class is recognised by its colour here
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,  # few CPU cores: workers would compete with training
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='BoundaryIoUMetric', widths=(3, 5, 8, 12)),
]
test_evaluator = val_evaluator

# Short schedule from scratch: AdamW with a linear warm-up and poly decay
# (SGD at lr 0.01 barely moves a randomly initialised network in a few
# hundred iterations).  tools/demo.py rescales `max_iters` and the
# scheduler ends with --iters.  The offset/mask convs of FaPN's modules
# train at a reduced rate (the shared fragment's paramwise_cfg; FPN has no
# such parameter, so both models get the same optimiser config).
max_iters = 600
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0),
    paramwise_cfg={{_base_.fapn_offset_paramwise_cfg}})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=50, by_epoch=False),
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=50,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1),
    visualization=dict(draw=False))
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=False)
