# MaskFormer R-50 on ADE20K with FaPN's pixel decoder (the released
# BasePixelFANDecoder: FAM without FSM, GN). Everything else is mmseg's stock
# MaskFormer config.
_base_ = [
    'mmseg::maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py',
    '../../_base_/mmfapn.py'
]
# norm_cfg (GN 32) and act_cfg (ReLU) are inherited from the stock decoder
model = dict(
    decode_head=dict(pixel_decoder=dict(type='mmdet.FaPNPixelDecoder')))
