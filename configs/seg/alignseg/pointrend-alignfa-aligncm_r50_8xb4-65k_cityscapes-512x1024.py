# AlignSeg's AlignFA + AlignCM (§3.2, §3.3) on the PointRend R50 Cityscapes
# recipe: AlignCM (3x3 bins, 256 local + 256 aligned-context channels) on
# C5 before the top lateral, like UPerNet's PPM, and AlignFA at every
# top-down fusion.
_base_ = ['./pointrend-alignfa_r50_8xb4-65k_cityscapes-512x1024.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    neck=dict(
        context_cfg=dict(
            type='AlignCM',
            in_channels=2048,
            channels=256,
            bin_size=3,
            norm_cfg=norm_cfg)))
