# `make demo`: the same Semantic FPN recipe with FPN's neck replaced by FaPN
# (FPN's in_channels/out_channels/num_outs are kept).
_base_ = ['./_base_/sem-fpn_r18_toycity-demo.py']
model = dict(neck=dict(type='FaPN'))
