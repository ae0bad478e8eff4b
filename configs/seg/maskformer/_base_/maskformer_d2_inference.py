# Inference setting of the released MaskFormer + FaPN detectron2 models
# (ShihuaHuang95/FaPN-full), shared by the two `*_d2-weights.py` configs.
# Only variables are defined (mmengine forbids a key such as `model` in two
# bases); the configs use them as `{{_base_.d2_maskformer_...}}`.

# MaskFormer's inputs: RGB, ImageNet mean/std (MODEL.PIXEL_MEAN/PIXEL_STD,
# INPUT.FORMAT "RGB"); padding value 0 after normalisation, as detectron2's
# ImageList.
d2_maskformer_data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)

# Single scale: shorter side 640, longer side at most 2560
# (INPUT.MIN_SIZE_TEST 640, MAX_SIZE_TEST 2560).
d2_maskformer_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]

# Multi-scale + flip (`mim test ... --tta`): TEST.AUG MIN_SIZES 320..1120,
# MAX_SIZE 4480, FLIP True, i.e. shorter side s, longer side <= 4480.
d2_maskformer_tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale=(4480, s), keep_ratio=True)
                for s in (320, 480, 640, 800, 960, 1120)
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')],
        ])
]

# MaskFormer's TransformerPredictor / semantic inference: 100 queries, 6
# post-norm decoder layers, softmax over classes without "no object" times
# sigmoid masks (mmseg's MaskFormerHead.predict), whole image.
d2_maskformer_head = dict(
    num_queries=100,
    pixel_decoder=dict(
        type='mmdet.FaPNPixelDecoder', share_offset_norm=True),
    transformer_decoder=dict(num_layers=6))
d2_maskformer_test_cfg = dict(mode='whole')
