# Real-time FaPN, ResNet-34, COCO-Stuff-10K (171 classes): 640x640 crops,
# 20K iterations (paper's Table 8: 30.3 mIoU, 110 FPS on a Titan RTX).
_base_ = [
    './_base_/fapn-rt_r34.py', './_base_/coco-stuff10k-640x640.py',
    'mmseg::_base_/default_runtime.py', './_base_/schedule_20k.py',
    '../../_base_/mmfapn.py'
]
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=171))
