"""Semantic FPN + FaPN configs: they load, build, add exactly FaPN's
parameters to the mmseg base, and train/infer on odd sizes."""
import pytest

FAPN_MINUS_FPN = 4_442_504  # SPEC §1: 7,786,888 - 3,344,384

CONFIGS = {
    'sem_fpn/sem-fpn_r50_fapn_4xb2-80k_cityscapes-512x1024.py':
    ('mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py', 19),
    'sem_fpn/sem-fpn_r50_fapn_4xb4-160k_ade20k-512x512.py':
    ('mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', 150),
}


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_builds_with_fapn_overhead(config, seg_config, seg_model,
                                   count_params):
    base_config, num_classes = CONFIGS[config]
    cfg = seg_config(config)
    fapn = seg_model(cfg)
    base = seg_model(seg_config(base_config))
    assert type(fapn.neck).__name__ == 'FaPN'
    assert type(base.neck).__name__ == 'FPN'
    assert fapn.decode_head.num_classes == num_classes
    assert cfg.train_dataloader.dataset.type == seg_config(
        base_config).train_dataloader.dataset.type
    assert count_params(fapn.backbone) == count_params(base.backbone)
    assert count_params(fapn.decode_head) == count_params(base.decode_head)
    assert count_params(fapn) - count_params(base) == FAPN_MINUS_FPN
    print(f'{config}: {count_params(fapn):,} params '
          f'(mmseg base {count_params(base):,})')


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_loss_and_predict(config, seg_config, seg_model, seg_loss_predict):
    model = seg_model(seg_config(config), odd_sizes=True)
    fam = {n: p for n, p in model.named_parameters()
           if n.startswith('neck.align_modules') and '.dcn.' in n}
    losses = seg_loss_predict(model, fam)
    assert 'decode.loss_ce' in losses
