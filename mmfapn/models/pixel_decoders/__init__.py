# pixel decoders for MaskFormer-style heads (mmdet registry)
from .fapn_pixel_decoder import FaPNPixelDecoder

__all__ = ['FaPNPixelDecoder']
