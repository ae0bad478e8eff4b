# UPerNet R-50 + FaPN on ADE20K (see the Cityscapes config).
_base_ = [
    'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
    '../../_base_/mmfapn.py'
]
model = dict(decode_head=dict(type='UPerFaPNHead'))
