# Supplement Table 1, row "FPN" (11.4M params, 68.6 mIoU, paper's numbers):
# 1x1 laterals, nearest upsampling, sum fusion, no FAM/FSM.
_base_ = ['../fapn-rt_r18_4xb4-40k_cityscapes-768x1536.py']
model = dict(
    decode_head=dict(use_fam=False, use_fsm=False, fusion='sum'))
