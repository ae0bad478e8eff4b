"""Real-time FaPN configs (configs/seg/fapn_realtime): every config builds,
the R18 ablation rows land on the supplement's parameter counts, the
recipe is the supplement's, loss/predict run on CPU at odd sizes, and the
Cityscapes pipelines give the named sizes on data in the real format."""
import copy
import functools
import glob
import os.path as osp

import pytest
import torch

import mmfapn  # noqa: F401  (registers the head)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CONFIG_DIR = osp.join(REPO, 'configs', 'seg', 'fapn_realtime')
CONFIGS = sorted(
    osp.relpath(p, CONFIG_DIR)
    for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in p)

MAIN = 'fapn-rt_r18_4xb4-40k_cityscapes-768x1536.py'
# Supplement Table 1 (R18, Cityscapes): row -> (switches, params in M)
ABLATION = {
    'ablation/fapn-rt-abl-fpn_r18_4xb4-40k_cityscapes-768x1536.py':
    ((False, False, 'sum'), 11.4),
    'ablation/fapn-rt-abl-fam_r18_4xb4-40k_cityscapes-768x1536.py':
    ((True, False, 'sum'), 12.2),
    'ablation/fapn-rt-abl-fam-fsm_r18_4xb4-40k_cityscapes-768x1536.py':
    ((True, True, 'sum'), 12.6),
    'ablation/fapn-rt-abl-fam-fsm-concat_r18_4xb4-40k_cityscapes-768x1536.py':
    ((True, True, 'concat'), 12.6),
}
# what this repository's head gives (see RealtimeFaPNHead's docstring)
ABLATION_EXACT = dict(zip(ABLATION, [11366675, 12225475, 12569155, 12635203]))


@functools.lru_cache(maxsize=None)
def _load(name):
    from mmengine import Config
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def _cfg(name):
    return copy.deepcopy(_load(name))  # parsing is slow; tests may edit


@functools.lru_cache(maxsize=None)
def _metafile():
    import yaml
    with open(osp.join(CONFIG_DIR, 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    return {m['Config']: m for m in meta['Models']}


def _build(cfg):
    """The config's model, nothing downloaded, SyncBN reverted to BN (what
    mmengine's Runner does when not distributed).  Construction already
    applies the FSM/FAM release init (zero offsets); init_weights (slow:
    it logs every parameter) is left to the Runner test."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg.model.backbone.init_cfg = None
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def test_model_index_imports_the_metafile():
    import yaml
    with open(osp.join(REPO, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    assert 'configs/seg/fapn_realtime/metafile.yml' in index['Import']
    assert len(_metafile()) == len(CONFIGS)


def test_config_list_is_complete():
    expected = {
        'fapn-rt_r18_4xb4-40k_cityscapes-512x1024.py', MAIN,
        'fapn-rt_r34_4xb4-40k_cityscapes-1024x2048.py',
        'fapn-rt_r18_4xb4-20k_coco-stuff10k-640x640.py',
        'fapn-rt_r34_4xb4-20k_coco-stuff10k-640x640.py'
    } | set(ABLATION)
    assert set(CONFIGS) == expected


@pytest.mark.parametrize('name', CONFIGS)
def test_every_config_builds(name, count_params):
    cfg = _cfg(name)
    assert cfg.custom_imports == dict(
        imports=['mmfapn', 'mmfapn.engine.harden'],
        allow_failed_imports=False)
    model = _build(cfg)
    head = model.decode_head
    assert type(head).__name__ == 'RealtimeFaPNHead'
    assert not model.with_neck
    depth = 34 if '_r34_' in name else 18
    assert model.backbone.depth == depth
    assert cfg.model.backbone.out_indices == (1, 2, 3)
    assert head.in_channels == [128, 256, 512]
    assert (head.fpn_channels, head.channels) == (128, 64)
    assert head.num_classes == (171 if 'coco-stuff10k' in name else 19)
    switches = (head.use_fam, head.use_fsm, head.fusion)
    n = count_params(model)
    print(f'{name}: {n} parameters')
    # mim's metafile lists the config with this parameter count
    entry = _metafile()[f'configs/seg/fapn_realtime/{name}']
    assert entry['Metadata']['Parameters'] == n
    if name in ABLATION:
        # Supplement Table 1 (R18, 19 classes): 11.4M, 12.2M, 12.6M, 12.6M
        expected_switches, paper_m = ABLATION[name]
        assert switches == expected_switches
        assert abs(n / 1e6 - paper_m) <= 0.1, (n, paper_m)
        assert n == ABLATION_EXACT[name]
    else:
        assert switches == (True, True, 'concat')
        if name == MAIN or name.endswith('cityscapes-512x1024.py'):
            assert n == ABLATION_EXACT[list(ABLATION)[-1]]


def test_pretrained_backbones_are_torchvision():
    for name, ckpt in ((MAIN, 'torchvision://resnet18'),
                       ('fapn-rt_r34_4xb4-40k_cityscapes-1024x2048.py',
                        'torchvision://resnet34')):
        cfg = _cfg(name)
        assert cfg.model.backbone.type == 'ResNet'
        assert cfg.model.backbone.init_cfg == dict(
            type='Pretrained', checkpoint=ckpt)
        assert cfg.model.pretrained is None


@pytest.mark.parametrize('name,iters,crop', [
    (MAIN, 40000, (768, 1536)),
    ('fapn-rt_r34_4xb4-20k_coco-stuff10k-640x640.py', 20000, (640, 640)),
])
def test_supplement_recipe(name, iters, crop):
    """SGD m 0.9, wd 5e-4, lr 0.01, poly(0.9) to zero; 4 GPUs x 4 images;
    crops 1536x768 (Cityscapes) / 640x640 (COCO-Stuff)."""
    cfg = _cfg(name)
    assert cfg.model.data_preprocessor.size == crop
    assert cfg.train_dataloader.dataset.pipeline[3]['crop_size'] == crop
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ('SGD', 0.01,
                                                                  0.9, 5e-4)
    (sched, ) = cfg.param_scheduler
    assert (sched.type, sched.power, sched.eta_min, sched.end) == ('PolyLR',
                                                                   0.9, 0.0,
                                                                   iters)
    assert cfg.train_cfg.max_iters == iters
    assert cfg.train_dataloader.batch_size == 4
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert 'PhotoMetricDistortion' not in types  # flip + scale only
    resize = cfg.train_dataloader.dataset.pipeline[2]
    base = resize['scales'][1]
    ratios = [s[1] / base[1] for s in resize['scales']]
    assert ratios == [0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert all(s[0] / s[1] == base[0] / base[1] for s in resize['scales'])


def test_loss_and_predict_on_cpu_at_odd_sizes():
    """One training step and one inference of the R18 model through its own
    data preprocessor; the deformable convs' offset branch learns."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    torch.manual_seed(0)
    cfg = _cfg(MAIN)
    cfg.model.data_preprocessor.size = None  # keep the odd size
    cfg.model.data_preprocessor.size_divisor = 1
    model = _build(cfg)

    def batch(sizes, seed):
        g = torch.Generator().manual_seed(seed)
        inputs, samples = [], []
        for h, w in sizes:
            inputs.append(
                torch.randint(0, 256, (3, h, w), generator=g,
                              dtype=torch.uint8))
            s = SegDataSample(metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
            s.gt_sem_seg = PixelData(
                data=torch.randint(0, 19, (1, h, w), generator=g))
            samples.append(s)
        return dict(inputs=inputs, data_samples=samples)

    model.train()
    data = model.data_preprocessor(batch([(67, 99)] * 2, 0), training=True)
    losses = model.loss(**data)
    assert torch.isfinite(losses['decode.loss_ce'])
    losses['decode.loss_ce'].backward()
    for fam in model.decode_head.fams:
        assert fam.dcn.conv_offset.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch([(67, 99)] * 2, 1),
                                       training=False)
        low = model._forward(data['inputs'])
        results = model.predict(**data)
    assert low.shape == (2, 19, 9, 13)  # stride 8 (ceil), odd sizes
    for res in results:
        assert res.seg_logits.data.shape == (19, 67, 99)
        assert res.pred_sem_seg.data.shape == (1, 67, 99)


@pytest.mark.parametrize('name,test_hw', [
    ('fapn-rt_r18_4xb4-40k_cityscapes-512x1024.py', (512, 1024)),
    (MAIN, (768, 1536)),
    ('fapn-rt_r34_4xb4-40k_cityscapes-1024x2048.py', (1024, 2048)),
])
def test_cityscapes_pipelines_on_toy_data(tmp_path, name, test_hw):
    """The configs' datasets read a Cityscapes-format folder: training
    samples are 768x1536 crops, test images have the size in the name."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from mmfapn.datasets import write_toy_cityscapes
    init_default_scope('mmseg')
    write_toy_cityscapes(str(tmp_path), num_train=1, num_val=1, height=64,
                         width=128)
    cfg = _cfg(name)
    for loader, crop in ((cfg.train_dataloader, (768, 1536)),
                         (cfg.val_dataloader, test_hw)):
        dataset = DATASETS.build(dict(loader.dataset, data_root=str(tmp_path)))
        assert len(dataset) == 1
        sample = dataset[0]
        assert tuple(sample['inputs'].shape[-2:]) == crop
        assert sample['data_samples'].ori_shape == (64, 128)


def test_coco_stuff_pipeline_crops_640():
    import numpy as np
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    cfg = _cfg('fapn-rt_r18_4xb4-20k_coco-stuff10k-640x640.py')
    train = Compose(cfg.train_dataloader.dataset.pipeline[2:-1])
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (427, 640, 3), dtype=np.uint8)
    seg = rng.integers(0, 171, (427, 640), dtype=np.uint8)
    scales = cfg.train_dataloader.dataset.pipeline[2]['scales']
    seen = set()
    for _ in range(8):
        out = train(dict(img=img, gt_seg_map=seg, seg_fields=['gt_seg_map'],
                         img_shape=img.shape[:2], ori_shape=img.shape[:2]))
        long_side, short_side = scales[out['scale_idx']]
        f = min(long_side / 640, short_side / 427)
        resized = (int(427 * f + 0.5), int(640 * f + 0.5))
        # crops are 640x640; smaller scaled images are padded later by the
        # segmentor's data preprocessor (size=crop_size)
        crop = tuple(min(640, s) for s in resized)
        assert out['img'].shape[:2] == crop
        assert out['gt_seg_map'].shape == crop
        seen.add(out['scale_idx'])
    assert len(seen) > 1
    test = Compose(cfg.test_dataloader.dataset.pipeline[1:2])
    out = test(dict(img=img, img_shape=img.shape[:2]))
    assert min(out['img'].shape[:2]) == 640


@pytest.mark.slow
def test_runner_trains_and_evaluates_on_toy_cityscapes(tmp_path):
    """mmengine's Runner with the real config (crop and test size shrunk):
    two SGD iterations, then validation with mmseg's IoUMetric."""
    from mmengine.runner import Runner

    from mmfapn.datasets import write_toy_cityscapes
    root = tmp_path / 'data'
    write_toy_cityscapes(str(root), num_train=2, num_val=1, height=64,
                         width=128)
    cfg = _cfg(MAIN)
    cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor.size = (64, 96)
    cfg.work_dir = str(tmp_path / 'work')
    train_pipeline = cfg.train_dataloader.dataset.pipeline
    train_pipeline[2]['scales'] = [(128, 64), (160, 80)]
    train_pipeline[3]['crop_size'] = (64, 96)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.data_root = str(root)
    cfg.train_dataloader.batch_size = 2
    cfg.val_dataloader.dataset.pipeline[1]['scale'] = (96, 48)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2,
                         val_interval=2)
    cfg.param_scheduler[0]['end'] = 2
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=2)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_2.pth'))
    metrics = runner.val_loop.run()
    assert 0.0 <= metrics['mIoU'] <= 100.0
    assert 0.0 < metrics['aAcc'] <= 100.0
