# Real-time FaPN model (FaPN supplement, section 2): ResNet-18 C3..C5 into
# RealtimeFaPNHead (128-channel FSM laterals, FAM with nearest x2 upsampling,
# concatenation fusion, prediction at stride 8).  No neck.  Built on mmseg's
# FPN segmentor so the data preprocessor, SyncBN and loss stay stock.
_base_ = ['mmseg::_base_/models/fpn_r50.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        type='ResNet',  # torchvision layout (ImageNet weights below)
        depth=18,
        out_indices=(1, 2, 3),  # C3, C4, C5
        init_cfg=dict(
            type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=None,
    decode_head=dict(
        _delete_=True,
        type='RealtimeFaPNHead',
        in_channels=[128, 256, 512],
        in_index=[0, 1, 2],
        fpn_channels=128,
        channels=64,
        use_fam=True,
        use_fsm=True,
        fusion='concat',
        deform_groups=8,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
