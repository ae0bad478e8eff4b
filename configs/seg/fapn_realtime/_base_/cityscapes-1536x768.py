# The supplement's Cityscapes recipe: random scale from {0.75, ..., 2.0} of
# 2048x1024, crop 1536x768, horizontal flip (no photometric distortion),
# batch 16 (4 GPUs x 4).  Configs that include this set the test size.
_base_ = ['mmseg::_base_/datasets/cityscapes.py']
crop_size = (768, 1536)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomChoiceResize',
        scales=[(1536, 768), (2048, 1024), (2560, 1280), (3072, 1536),
                (3584, 1792), (4096, 2048)],
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
