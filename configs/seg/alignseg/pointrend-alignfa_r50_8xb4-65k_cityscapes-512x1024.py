# AlignSeg's AlignFA (Huang et al., TPAMI 2021, §3.2) in place of FaPN's
# FAM, on the PointRend R50 Cityscapes recipe of FaPN Table 1: an FPN with
# 1x1 laterals whose every top-down fusion flow-warps both inputs
# (zero-initialised flows, so training starts from plain FPN fusion).
_base_ = [
    '../point_rend/pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py'
]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    neck=dict(
        lateral='conv',
        align='flow',
        align_cfg=dict(norm_cfg=norm_cfg),
        top_output_conv=True))
