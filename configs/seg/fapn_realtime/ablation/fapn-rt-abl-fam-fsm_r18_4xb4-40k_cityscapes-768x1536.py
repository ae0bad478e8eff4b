# Supplement Table 1, row "+ FAM + FSM" (12.6M params, 74.2 mIoU, paper's
# numbers): FSM laterals, FAM alignment, sum fusion.
_base_ = ['../fapn-rt_r18_4xb4-40k_cityscapes-768x1536.py']
model = dict(decode_head=dict(use_fam=True, use_fsm=True, fusion='sum'))
