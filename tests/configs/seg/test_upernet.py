"""UPerNet + FaPN configs: UPerFaPNHead replaces UPerHead (UPerNet has no
neck); documented overhead, training and inference on odd sizes."""
import pytest

UPER_FAPN_OVERHEAD = 13_012_104  # see UPerFaPNHead's docstring

CONFIGS = {
    'upernet/upernet_r50_fapn_4xb2-80k_cityscapes-512x1024.py':
    ('mmseg::upernet/upernet_r50_4xb2-80k_cityscapes-512x1024.py', 19),
    'upernet/upernet_r50_fapn_4xb4-160k_ade20k-512x512.py':
    ('mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', 150),
}


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_build_params_loss_predict(config, seg_config, seg_model,
                                   stock_params, count_params,
                                   seg_loss_predict):
    base_config, num_classes = CONFIGS[config]
    model = seg_model(seg_config(config), odd_sizes=True)
    base = stock_params(base_config)
    head = model.decode_head
    assert type(head).__name__ == 'UPerFaPNHead'
    assert not model.with_neck and 'neck' not in base
    assert head.num_classes == model.auxiliary_head.num_classes == \
        num_classes
    # the head keeps UPerHead's settings from the base config
    assert head.channels == 512 and len(head.psp_modules) == 4  # PPM
    assert head.in_channels == [256, 512, 1024, 2048]
    assert count_params(model.backbone) == base['backbone']
    assert count_params(model.auxiliary_head) == base['auxiliary_head']
    assert count_params(head) - base['decode_head'] == UPER_FAPN_OVERHEAD
    assert count_params(model) - base['total'] == UPER_FAPN_OVERHEAD
    print(f'{config}: {count_params(model):,} params '
          f'(mmseg base {base["total"]:,}; head {count_params(head):,} vs '
          f'{base["decode_head"]:,})')

    fam = {n: p for n, p in model.named_parameters()
           if n.startswith('decode_head.align_modules') and '.dcn.' in n}
    losses = seg_loss_predict(model, fam)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
