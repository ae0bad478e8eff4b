# `make demo` baseline: Semantic FPN with mmseg's FPN neck (the recipe is in
# _base_/sem-fpn_r18_toycity-demo.py; only the neck differs from FaPN's).
_base_ = ['./_base_/sem-fpn_r18_toycity-demo.py']
model = dict(neck=dict(type='FPN'))
