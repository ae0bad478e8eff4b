# Real-time FaPN, ResNet-18, Cityscapes: trained on 1536x768 crops, tested
# at 1536x768 (the supplement's Table 1 / Table 8 row: 75.6 mIoU val,
# 78.1 FPS on a Titan RTX, paper's numbers).
_base_ = [
    './_base_/fapn-rt_r18.py', './_base_/cityscapes-1536x768.py',
    'mmseg::_base_/default_runtime.py', './_base_/schedule_40k.py',
    '../../_base_/mmfapn.py'
]
crop_size = (768, 1536)
model = dict(data_preprocessor=dict(size=crop_size))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1536, 768), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
