# MaskFormer R-101 on ADE20K with FaPN's pixel decoder; otherwise mmseg's
# stock config.
_base_ = [
    'mmseg::maskformer/maskformer_r101-d32_8xb2-160k_ade20k-512x512.py',
    '../../_base_/mmfapn.py'
]
model = dict(
    decode_head=dict(pixel_decoder=dict(type='mmdet.FaPNPixelDecoder')))
