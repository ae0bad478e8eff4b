# Supplement Table 1, row "+ FAM" (12.2M params, 73.8 mIoU, paper's
# numbers): 1x1 laterals, FAM alignment, sum fusion.
_base_ = ['../fapn-rt_r18_4xb4-40k_cityscapes-768x1536.py']
model = dict(decode_head=dict(use_fam=True, use_fsm=False, fusion='sum'))
