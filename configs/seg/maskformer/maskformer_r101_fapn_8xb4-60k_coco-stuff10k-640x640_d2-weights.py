# Evaluation config for the released MaskFormer + FaPN R-101 COCO-Stuff-10K
# model of ShihuaHuang95/FaPN-full (maskformer_R101+FaPN_bs32_60k; paper
# Table 7b: 39.6 / 40.6 mIoU s.s. / m.s. on the test split), converted with
# `tools/model_converters/d2_fapn_to_mmdet.py IN OUT`.
# The backbone is detectron2's ResNet as MaskFormer configures it:
# torchvision style (STRIDE_IN_1X1 False: stride in the 3x3 conv), the basic
# 7x7 stem, FrozenBN (eps 1e-5) = mmseg's ResNet with style='pytorch' and
# frozen BN; the decoder BasePixelFANDecoder = FaPNPixelDecoder with the
# shared GN, 100 queries, 171 classes + "no object".  Inference as released:
# RGB with ImageNet mean/std, shorter side 640 (longer <= 2560), whole image;
# `--tta` gives the paper's multi-scale + flip setting.  Not for training.
_base_ = [
    './maskformer_r101_fapn_8xb4-60k_coco-stuff10k-640x640.py',
    './_base_/maskformer_d2_inference.py'
]
model = dict(
    data_preprocessor={{_base_.d2_maskformer_data_preprocessor}},
    backbone=dict(
        depth=101,
        style='pytorch',
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        init_cfg=None),
    decode_head={{_base_.d2_maskformer_head}},
    test_cfg={{_base_.d2_maskformer_test_cfg}})
test_pipeline = {{_base_.d2_maskformer_test_pipeline}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = {{_base_.d2_maskformer_tta_pipeline}}
