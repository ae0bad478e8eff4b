"""PointRend + FaPN configs (paper Table 4): they load, build, add exactly
FaPN's parameters to the mmseg base, and train/infer on odd sizes."""
import pytest
import torch

FAPN_MINUS_FPN = 4_442_504  # FaPN neck 7,786,888 - mmdet FPN 3,344,384

CONFIGS = {
    'point_rend/pointrend_r50_fapn_4xb2-80k_cityscapes-512x1024.py':
    'mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py',
    'point_rend/pointrend_r101_fapn_4xb2-80k_cityscapes-512x1024.py':
    'mmseg::point_rend/pointrend_r101_4xb2-80k_cityscapes-512x1024.py',
    'point_rend/pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py':
    'mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py',
    'point_rend/pointrend_r101_fapn_8xb4-65k_cityscapes-512x1024.py':
    'mmseg::point_rend/pointrend_r101_4xb2-80k_cityscapes-512x1024.py',
}


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_build_params_loss_predict(config, seg_config, seg_model,
                                   stock_params, count_params,
                                   seg_loss_predict):
    """Only the neck differs from the mmseg base, by exactly FaPN - FPN;
    then one training step and one inference on odd sizes."""
    model = seg_model(seg_config(config), odd_sizes=True)
    base = stock_params(CONFIGS[config])
    assert type(model.neck).__name__ == 'FaPN'
    assert count_params(model.neck) == 7_786_888
    assert base['neck'] == 3_344_384  # mmseg's FPN
    assert count_params(model.backbone) == base['backbone']
    assert count_params(model.decode_head) == base['decode_head']
    assert count_params(model) - base['total'] == FAPN_MINUS_FPN
    print(f'{config}: {count_params(model):,} params '
          f'(mmseg base {base["total"]:,})')

    fam = {n: p for n, p in model.named_parameters()
           if n.startswith('neck.align_modules') and '.dcn.' in n}
    losses = seg_loss_predict(model, fam)
    assert {'decode_0.loss_ce', 'decode_1.pointloss_ce'} <= set(losses)


@pytest.mark.parametrize('depth', [50, 101])
def test_paper_recipe(depth, seg_config, seg_model):
    """The 65k configs follow the FaPN supplement (detectron2) recipe; the
    80k ones keep mmseg's."""
    cfg = seg_config(f'point_rend/pointrend_r{depth}_fapn_8xb4-65k_'
                     'cityscapes-512x1024.py')
    assert cfg.train_cfg.max_iters == 65000
    assert cfg.train_dataloader.batch_size * 8 == 32
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
    assert len(steps) == 1 and steps[0].milestones == [40000, 55000]
    assert steps[0].gamma == 0.1
    mmseg_recipe = seg_config(f'point_rend/pointrend_r{depth}_fapn_4xb2-80k_'
                              'cityscapes-512x1024.py')
    assert mmseg_recipe.train_cfg.max_iters == 80000
    assert {s.type for s in mmseg_recipe.param_scheduler} == {
        'LinearLR', 'PolyLR'}

    model = seg_model(cfg, init=False)
    assert model.backbone.depth == depth
    model.train()
    bns = [m for m in model.backbone.modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(not m.training for m in bns)  # frozen statistics
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    # stem and res2 frozen (detectron2 FREEZE_AT=2), res3+ convs trained
    assert not any(p.requires_grad for p in model.backbone.stem.parameters())
    assert not any(p.requires_grad for p in model.backbone.layer1.parameters())
    assert model.backbone.layer2[0].conv1.weight.requires_grad


def test_paper_recipe_pipeline(tmp_path, seg_config, mmseg_scope):
    """detectron2's short-side choice (>= 512) then the 512x1024 crop, run
    by mmseg's own dataset and transforms on generated Cityscapes files."""
    from mmseg.registry import DATASETS

    from mmfapn.datasets import write_toy_cityscapes
    write_toy_cityscapes(str(tmp_path), num_train=1, num_val=0, height=63,
                         width=127)
    cfg = seg_config(
        'point_rend/pointrend_r50_fapn_8xb4-65k_cityscapes-512x1024.py')
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    sample = DATASETS.build(cfg.train_dataloader.dataset)[0]
    # a 63x127 image resized to a short side of at least 512, then cropped
    assert tuple(sample['inputs'].shape) == (3, 512, 1024)
    assert tuple(sample['data_samples'].gt_sem_seg.data.shape) == (1, 512,
                                                                   1024)
