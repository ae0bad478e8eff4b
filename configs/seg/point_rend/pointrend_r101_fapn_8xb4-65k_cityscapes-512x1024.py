# PointRend (semantic) R-101 + FaPN, the paper's recipe (see the R-50 one).
_base_ = './pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py'
model = dict(
    pretrained='open-mmlab://resnet101_v1c', backbone=dict(depth=101))
