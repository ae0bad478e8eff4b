# The supplement's schedule: SGD (momentum 0.9, weight decay 5e-4, lr 0.01;
# as mmseg's stock schedule) with lr = 0.01 * (1 - iter / 20000) ** 0.9,
# i.e. poly decay to zero (the stock PolyLR stops at 1e-4).
_base_ = ['mmseg::_base_/schedules/schedule_20k.py']
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=20000,
        by_epoch=False)
]
