# Evaluation config for the released detectron2 checkpoint
# pointrend_semantic_R_101_FAN_1x_cityscapes (paper: mIoU 80.1); see the
# R-50 one.
_base_ = './pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024_d2-weights.py'
model = dict(backbone=dict(depth=101))
