# Real-time FaPN, ResNet-18, Cityscapes: the same training as the 768x1536
# config, tested at 1024x512 (paper's Table 8: 69.2 mIoU val, 142 FPS on a
# Titan RTX).
_base_ = ['./fapn-rt_r18_4xb4-40k_cityscapes-768x1536.py']
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
