# Real-time FaPN, ResNet-34, Cityscapes: trained on 1536x768 crops, tested
# at full resolution 2048x1024 (paper's Table 8: 78.5 mIoU val, 30.2 FPS on
# a Titan RTX).
_base_ = [
    './_base_/fapn-rt_r34.py', './_base_/cityscapes-1536x768.py',
    'mmseg::_base_/default_runtime.py', './_base_/schedule_40k.py',
    '../../_base_/mmfapn.py'
]
crop_size = (768, 1536)
model = dict(data_preprocessor=dict(size=crop_size))
# the stock Cityscapes test pipeline already resizes to 2048x1024
