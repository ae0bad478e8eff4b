# pixel decoders for MaskFormer-style heads (mmdet registry)
