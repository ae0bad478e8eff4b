# The supplement's COCO-Stuff recipe: random scale from {0.75, ..., 2.0},
# crop 640x640, horizontal flip, batch 16 (4 GPUs x 4).  The base scale
# (shorter side 640, as mmseg's 2048x512 is shorter side 512) is our
# choice; the supplement names only the crop.  Test: shorter side 640.
_base_ = ['mmseg::_base_/datasets/coco-stuff10k.py']
crop_size = (640, 640)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1920, 480), (2560, 640), (3200, 800), (3840, 960),
                (4480, 1120), (5120, 1280)],
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
