# Evaluation config for the released MaskFormer + FaPN Swin-L ADE20K model
# of ShihuaHuang95/FaPN-full (maskformer_swin_large+FaPN_IN21k_384_bs16_160k_
# res640; paper Table 7a: 55.2 / 56.7 mIoU s.s. / m.s.), converted with
# `tools/model_converters/d2_fapn_to_mmdet.py IN OUT`.
# The model is the training config's: MaskFormer's D2SwinTransformer is
# mmseg's SwinTransformer (embed dims 192, depths 2/2/18/2, heads
# 6/12/24/48, window 12, patch norm, no absolute position embedding), the
# decoder BasePixelFANDecoder = FaPNPixelDecoder with the shared GN
# (share_offset_norm), 100 queries.  Inference as released: RGB with
# ImageNet mean/std, shorter side 640 (longer <= 2560), whole image; `--tta`
# gives the paper's multi-scale + flip setting.  Not for training: nothing
# is initialised from ImageNet.
_base_ = [
    './maskformer_swin-l_fapn_8xb2-160k_ade20k-640x640.py',
    './_base_/maskformer_d2_inference.py'
]
model = dict(
    data_preprocessor={{_base_.d2_maskformer_data_preprocessor}},
    backbone=dict(init_cfg=None),  # every weight comes from the checkpoint
    decode_head={{_base_.d2_maskformer_head}},
    test_cfg={{_base_.d2_maskformer_test_cfg}})
test_pipeline = {{_base_.d2_maskformer_test_pipeline}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = {{_base_.d2_maskformer_tta_pipeline}}
