# MaskFormer R-101 + FaPN on COCO-Stuff-10K (171 classes) at 640x640: the
# paper's Table 7b model (39.6 / 40.6 mIoU s.s. / m.s. on the test split).
#
# mmseg 1.2.2 has no COCO-Stuff MaskFormer config: this starts from its stock
# R-101 MaskFormer config (model, AdamW 1e-4, backbone lr x0.1, clip 0.01,
# poly) and changes (1) the data to mmseg's datasets/coco-stuff10k.py at the
# released 640 crop and (2) the batch (32 = 8 x 4) and the 60k-iteration
# schedule of the released FaPN-full config (maskformer_R101+FaPN_bs32_60k),
# (3) the pixel decoder to FaPN's.
_base_ = [
    'mmseg::maskformer/maskformer_r101-d32_8xb2-160k_ade20k-512x512.py',
    '../../_base_/mmfapn.py'
]
num_classes = 171
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(
        num_classes=num_classes,
        pixel_decoder=dict(type='mmdet.FaPNPixelDecoder'),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])))

# mmseg's datasets/coco-stuff10k.py at 640x640
dataset_type = 'COCOStuffDataset'
data_root = 'data/coco_stuff10k'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(2560, 640),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        reduce_zero_label=True,
        data_prefix=dict(
            img_path='images/train2014', seg_map_path='annotations/train2014'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        reduce_zero_label=True,
        data_prefix=dict(
            img_path='images/test2014', seg_map_path='annotations/test2014'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# 60k iterations, evaluated every 5k as released
max_iters = 60000
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=5000)
default_hooks = dict(checkpoint=dict(interval=5000))
