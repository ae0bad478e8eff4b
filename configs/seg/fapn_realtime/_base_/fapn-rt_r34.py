# Real-time FaPN with ResNet-34 (same C3..C5 channels as ResNet-18).
_base_ = ['./fapn-rt_r18.py']
model = dict(
    backbone=dict(
        depth=34,
        init_cfg=dict(
            type='Pretrained', checkpoint='torchvision://resnet34')))
