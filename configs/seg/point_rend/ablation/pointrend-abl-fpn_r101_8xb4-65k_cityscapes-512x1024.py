# FaPN Table 1, row "FPN R101" (paper: 47.6M params, 78.9 mIoU).
_base_ = ['./pointrend-abl-fpn_r50_8xb4-65k_cityscapes-512x1024.py']
model = dict(
    pretrained='open-mmlab://resnet101_v1c', backbone=dict(depth=101))
