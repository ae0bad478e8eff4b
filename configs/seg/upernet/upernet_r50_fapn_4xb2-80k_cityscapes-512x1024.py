# UPerNet R-50 + FaPN on Cityscapes.  UPerNet has no neck (its FPN is inside
# UPerHead), so the head becomes UPerFaPNHead: FSM laterals and FAM
# top-down fusion, PPM on the top level kept; all UPerHead arguments of the
# mmseg base are kept.
_base_ = [
    'mmseg::upernet/upernet_r50_4xb2-80k_cityscapes-512x1024.py',
    '../../_base_/mmfapn.py'
]
model = dict(decode_head=dict(type='UPerFaPNHead'))
