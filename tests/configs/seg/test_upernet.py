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
def test_builds_with_documented_overhead(config, seg_config, seg_model,
                                         count_params):
    base_config, num_classes = CONFIGS[config]
    fapn = seg_model(seg_config(config))
    base = seg_model(seg_config(base_config))
    assert type(fapn.decode_head).__name__ == 'UPerFaPNHead'
    assert type(base.decode_head).__name__ == 'UPerHead'
    assert not fapn.with_neck and not base.with_neck
    assert fapn.decode_head.num_classes == num_classes
    assert fapn.auxiliary_head.num_classes == num_classes
    # the head keeps UPerHead's settings from the base config
    assert fapn.decode_head.channels == base.decode_head.channels == 512
    assert fapn.decode_head.in_channels == [256, 512, 1024, 2048]
    assert count_params(fapn.backbone) == count_params(base.backbone)
    assert count_params(fapn.auxiliary_head) == count_params(
        base.auxiliary_head)
    assert count_params(fapn) - count_params(base) == UPER_FAPN_OVERHEAD
    print(f'{config}: {count_params(fapn):,} params '
          f'(mmseg base {count_params(base):,})')


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_loss_and_predict(config, seg_config, seg_model, seg_loss_predict):
    model = seg_model(seg_config(config), odd_sizes=True)
    fam = {n: p for n, p in model.named_parameters()
           if n.startswith('decode_head.align_modules') and '.dcn.' in n}
    losses = seg_loss_predict(model, fam)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
