# Supplement Table 1, row "+ FAM + FSM + Concat" (12.6M params, 75.6 mIoU,
# paper's numbers): the full real-time FaPN, identical to the main config;
# listed so that every row of the ablation has its config.
_base_ = ['../fapn-rt_r18_4xb4-40k_cityscapes-768x1536.py']
model = dict(
    decode_head=dict(use_fam=True, use_fsm=True, fusion='concat'))
