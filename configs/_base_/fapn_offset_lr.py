# Reduced learning rate for FaPN's offset/mask convs, for AdamW recipes
# trained from scratch (as `make demo`): with the full learning rate the
# learned sampling offsets grow to many pixels on small maps.  A multiplier
# on learned sampling offsets is common practice (Deformable DETR trains its
# `sampling_offsets` at 0.1x).  The value below was chosen on the demo's
# validation split (docs/demo.md, "Recipe"); it is not the paper's recipe
# (SGD, ImageNet backbone), which uses no multiplier.
#
# Use it in your own config (mmengine cannot merge two bases that both set
# `optim_wrapper`, so the fragment exports the paramwise_cfg as a variable):
#
#     _base_ = ['<your base>.py', '<path to>/configs/_base_/fapn_offset_lr.py']
#     optim_wrapper = dict(
#         optimizer=dict(_delete_=True, type='AdamW', lr=2e-3,
#                        weight_decay=1e-4),
#         paramwise_cfg={{_base_.fapn_offset_paramwise_cfg}})
#
# "Offset/mask convs" are the convs whose output only steers where features
# are sampled from (their norms are left at the full rate):
#   FeatureAlignModule (FaPN neck, RealtimeFaPNHead, UPerFaPNHead,
#   FaPNPixelDecoder):
#     `offset_fusion.conv` (1x1 on cat[lat, 2*up], feeds only the offsets)
#     and `dcn.conv_offset` (3x3 -> offsets and mask);
#   FlowHead of AlignFA (`coarse_flow`, `fine_flow`) and AlignCM
#     (`flow_head`): `hidden.conv` (1x1) and `flow` (3x3 -> flow).
# A backbone's own deformable convs (e.g. ResNet `conv2.conv_offset`) are
# not matched.  Keys are substrings of full parameter names (mmengine's
# DefaultOptimWrapperConstructor `custom_keys`).
fapn_offset_lr_mult = 0.1
fapn_offset_paramwise_cfg = dict(
    custom_keys={
        key: dict(lr_mult=fapn_offset_lr_mult)
        for key in ('.offset_fusion.conv.', '.dcn.conv_offset.',
                    '_flow.hidden.conv.', '_flow.flow.',
                    '.flow_head.hidden.conv.', '.flow_head.flow.')
    })
