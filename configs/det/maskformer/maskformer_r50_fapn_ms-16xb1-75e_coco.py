# MaskFormer R-50 on COCO panoptic with FaPN's pixel decoder; otherwise
# mmdet's stock config.  The stock decoder (TransformerEncoderPixelDecoder)
# runs a 6-layer DETR encoder on C5 before its FPN; its ``encoder`` and
# ``positional_encoding`` settings are inherited, so FaPNPixelDecoder keeps
# that encoder and replaces only the FPN top-down path by FaPN's.
_base_ = [
    'mmdet::maskformer/maskformer_r50_ms-16xb1-75e_coco.py',
    '../../_base_/mmfapn.py'
]
model = dict(panoptic_head=dict(pixel_decoder=dict(type='FaPNPixelDecoder')))
