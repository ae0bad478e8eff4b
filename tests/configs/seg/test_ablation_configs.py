"""FaPN Table 1 rows and the AlignSeg aligners as configs: each builds on
the PointRend R50 Cityscapes paper recipe, adds the expected parameters to
the stock mmseg FPN model, and trains/infers on odd sizes (ResNet-18
copies for speed; the R50/R101 models are only built and counted)."""
import pytest
import torch

ABL = 'point_rend/ablation/'
ALIGNSEG = 'alignseg/'
SUFFIX = '_8xb4-65k_cityscapes-512x1024.py'
FPN_BASE = 'mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py'
# The detectron2 PointRend R50 FPN model the paper counted; the
# paper's row values are this base plus each variant's neck delta.
D2_FPN_R50 = 28_633_000

# config -> (paper params in M, paper mIoU, exact delta over FPN or None)
ROWS = {
    ABL + 'pointrend-abl-fpn_r50' + SUFFIX: (28.6, 77.4, 0),
    ABL + 'pointrend-abl-fpn-extra-conv_r50' + SUFFIX: (33.4, 77.5,
                                                        8 * 590_080),
    ABL + 'pointrend-abl-fpn_r101' + SUFFIX: (47.6, 78.9, None),
    ABL + 'pointrend-abl-fam_r50' + SUFFIX: (31.7, 79.7, 3_067_016),
    ABL + 'pointrend-abl-fam-se_r50' + SUFFIX: (33.1, 78.8, 4_442_504),
    ABL + 'pointrend-abl-fam-fsm_r50' + SUFFIX: (33.1, 80.0, 4_442_504),
    ABL + 'pointrend-abl-deconv-fsm_r50' + SUFFIX: (32.7, 76.7, 3_931_904),
    ABL + 'pointrend-abl-fam-after-fusion-fsm_r50' + SUFFIX: (32.7, 79.3,
                                                              4_049_288),
}
ALIGNSEG_CONFIGS = {
    # config -> exact delta over FPN: 3 AlignFA (272,384 each, SyncBN
    # hidden convs) and, for +AlignCM, the module on C5 (5,380,096) with
    # the top lateral reading 512 instead of 2048 channels
    ALIGNSEG + 'pointrend-alignfa_r50' + SUFFIX: 3 * 272_384,
    ALIGNSEG + 'pointrend-alignfa-aligncm_r50' + SUFFIX:
    3 * 272_384 + 5_380_096 - (2048 - 512) * 256,
}
# full mmseg model parameters, as listed in the READMEs and metafiles
PARAMS = {
    ABL + 'pointrend-abl-fpn_r50' + SUFFIX: 28_715_119,
    ABL + 'pointrend-abl-fpn-extra-conv_r50' + SUFFIX: 33_435_759,
    ABL + 'pointrend-abl-fpn_r101' + SUFFIX: 47_707_247,
    ABL + 'pointrend-abl-fam_r50' + SUFFIX: 31_782_135,
    ABL + 'pointrend-abl-fam-se_r50' + SUFFIX: 33_157_623,
    ABL + 'pointrend-abl-fam-fsm_r50' + SUFFIX: 33_157_623,
    ABL + 'pointrend-abl-deconv-fsm_r50' + SUFFIX: 32_647_023,
    ABL + 'pointrend-abl-fam-after-fusion-fsm_r50' + SUFFIX: 32_764_407,
    ALIGNSEG + 'pointrend-alignfa_r50' + SUFFIX: 29_532_271,
    ALIGNSEG + 'pointrend-alignfa-aligncm_r50' + SUFFIX: 34_519_151,
}
NECK = {  # config -> neck switches (the FPN rows use mmseg's FPN)
    ABL + 'pointrend-abl-fpn-extra-conv_r50' + SUFFIX: dict(
        lateral='conv', align='none', top_output_conv=True,
        extra_output_convs=2, upsample_cfg=dict(mode='nearest')),
    ABL + 'pointrend-abl-fam_r50' + SUFFIX: dict(lateral='conv',
                                                 align='fam'),
    ABL + 'pointrend-abl-fam-se_r50' + SUFFIX: dict(lateral='se', align='fam'),
    ABL + 'pointrend-abl-fam-fsm_r50' + SUFFIX: dict(lateral='fsm',
                                                     align='fam'),
    ABL + 'pointrend-abl-deconv-fsm_r50' + SUFFIX: dict(lateral='fsm',
                                                        align='deconv'),
    ABL + 'pointrend-abl-fam-after-fusion-fsm_r50' + SUFFIX: dict(
        lateral='fsm', align='fam_after_fusion'),
}


_COUNTS = {}  # config -> parameters, shared by the tests of this module


@pytest.fixture
def count_config(seg_config, mmseg_scope, count_params):
    """Parameters of a config's full model, built once per module with
    nothing downloaded (no init_weights: counting does not need it)."""

    def count(config: str) -> int:
        if config not in _COUNTS:
            cfg = seg_config(config)
            cfg.model.pretrained = None
            cfg.model.backbone.init_cfg = None
            _COUNTS[config] = count_params(mmseg_scope.build(cfg.model))
        return _COUNTS[config]

    return count


@pytest.mark.parametrize('config', sorted(ROWS))
def test_table1_row_parameters(config, count_config, seg_config):
    paper_m, paper_miou, exact = ROWS[config]
    cfg = seg_config(config)
    assert cfg.train_cfg.max_iters == 65000  # the paper's recipe
    if config in NECK:
        assert cfg.model.neck.type == 'FaPN'
        for k, v in NECK[config].items():
            assert cfg.model.neck[k] == v, (k, cfg.model.neck[k])
    else:
        assert cfg.model.neck.type == 'FPN'
    n = count_config(config)
    assert n == PARAMS[config]
    delta = n - count_config(FPN_BASE)
    if exact is not None:
        assert delta == exact
    if 'r101' in config:
        # the stock mmseg R101 model, recipe aside
        assert n == count_config(
            'mmseg::point_rend/pointrend_r101_4xb2-80k_cityscapes-512x1024.py')
    # the paper's absolute count, as the d2 FPN base plus our delta
    assert abs(D2_FPN_R50 + delta - paper_m * 1e6) <= 0.15e6
    print(f'\n{config}: {n:,} params (mmseg FPN base + {delta:,}); '
          f'd2 base + delta = {(D2_FPN_R50 + delta) / 1e6:.3f}M; '
          f'paper {paper_m}M, {paper_miou} mIoU')


@pytest.mark.parametrize('config', sorted(ALIGNSEG_CONFIGS))
def test_alignseg_parameters(config, count_config, seg_config):
    cfg = seg_config(config)
    assert cfg.model.neck.align == 'flow'
    assert cfg.model.neck.align_cfg.norm_cfg.type == 'SyncBN'
    n = count_config(config)
    assert n == PARAMS[config]
    delta = n - count_config(FPN_BASE)
    assert delta == ALIGNSEG_CONFIGS[config]
    print(f'\n{config}: {n:,} params (mmseg FPN base + {delta:,})')


def _r18(cfg):
    """The same model on ResNet-18 (test speed only)."""
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    if cfg.model.neck.get('context_cfg'):
        cfg.model.neck.context_cfg.in_channels = 512
    return cfg


LOSS_PREDICT = {
    # config -> substrings naming its alignment parameters
    ABL + 'pointrend-abl-fam_r50' + SUFFIX: ('align_modules', '.dcn.'),
    ABL + 'pointrend-abl-fam-se_r50' + SUFFIX: ('align_modules', '.dcn.'),
    ABL + 'pointrend-abl-fam-after-fusion-fsm_r50' + SUFFIX:
    ('align_modules', '.dcn.'),
    ABL + 'pointrend-abl-deconv-fsm_r50' + SUFFIX: ('align_modules',
                                                    '.deconv.'),
    ABL + 'pointrend-abl-fpn-extra-conv_r50' + SUFFIX: ('extra_output_convs',
                                                        '.conv.'),
    ALIGNSEG + 'pointrend-alignfa-aligncm_r50' + SUFFIX: ('', '.flow.'),
}


@pytest.mark.parametrize('config', sorted(LOSS_PREDICT))
def test_loss_and_predict(config, seg_config, seg_model, seg_loss_predict):
    torch.manual_seed(0)
    model = seg_model(_r18(seg_config(config)), odd_sizes=True)
    where, what = LOSS_PREDICT[config]
    params = {n: p for n, p in model.named_parameters()
              if n.startswith('neck.' + where) and what in n}
    if 'aligncm' in config:
        assert any(n.startswith('neck.context.') for n in params)
        assert sum(n.startswith('neck.align_modules.') for n in params) == 6
    losses = seg_loss_predict(model, params)
    assert {'decode_0.loss_ce', 'decode_1.pointloss_ce'} <= set(losses)


def test_metafiles_index_every_config():
    """mim's model index lists both metafiles; every config has an entry
    named after it, with the parameters the tests above measure; the only
    results are the paper's Table 1 mIoUs of the ablation rows."""
    import glob
    import os.path as osp

    import yaml
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    index = yaml.safe_load(open(osp.join(repo, 'model-index.yml')))
    for folder in ('configs/seg/point_rend/ablation', 'configs/seg/alignseg'):
        assert f'{folder}/metafile.yml' in index['Import']
        meta = yaml.safe_load(open(osp.join(repo, folder, 'metafile.yml')))
        models = {m['Name']: m for m in meta['Models']}
        configs = {osp.basename(p)[:-3]
                   for p in glob.glob(osp.join(repo, folder, '*.py'))}
        assert set(models) == configs
        for name, model in models.items():
            assert model['Config'] == f'{folder}/{name}.py'
            assert 'Weights' not in model  # no checkpoint exists
            key = folder.replace('configs/seg/', '') + '/' + name + '.py'
            if key in ROWS:
                paper_miou = ROWS[key][1]
                assert model['Results'][0]['Metrics'] == {'mIoU': paper_miou}
            else:
                assert 'Results' not in model
            assert model['Metadata']['Parameters'] == PARAMS[key]
