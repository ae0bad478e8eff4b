"""Semantic FPN + FaPN configs: they load, build, add exactly FaPN's
parameters to the mmseg base, and train/infer on odd sizes."""
import pytest

FAPN_MINUS_FPN = 4_442_504  # FaPN neck 7,786,888 - mmdet FPN 3,344,384

CONFIGS = {
    'sem_fpn/sem-fpn_r50_fapn_4xb2-80k_cityscapes-512x1024.py':
    ('mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py', 19),
    'sem_fpn/sem-fpn_r50_fapn_4xb4-160k_ade20k-512x512.py':
    ('mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', 150),
}


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_build_params_loss_predict(config, seg_config, seg_model,
                                   stock_params, count_params,
                                   seg_loss_predict):
    base_config, num_classes = CONFIGS[config]
    cfg = seg_config(config)
    assert cfg.train_dataloader.dataset.type == seg_config(
        base_config).train_dataloader.dataset.type
    model = seg_model(cfg, odd_sizes=True)
    base = stock_params(base_config)
    assert type(model.neck).__name__ == 'FaPN'
    assert model.decode_head.num_classes == num_classes
    assert count_params(model.neck) == 7_786_888
    assert base['neck'] == 3_344_384
    assert count_params(model.backbone) == base['backbone']
    assert count_params(model.decode_head) == base['decode_head']
    assert count_params(model) - base['total'] == FAPN_MINUS_FPN
    print(f'{config}: {count_params(model):,} params '
          f'(mmseg base {base["total"]:,})')

    fam = {n: p for n, p in model.named_parameters()
           if n.startswith('neck.align_modules') and '.dcn.' in n}
    losses = seg_loss_predict(model, fam)
    assert 'decode.loss_ce' in losses
