"""Fixtures for the mmseg config tests: build a config's model with nothing
downloaded, and run ``loss``/``predict`` on small odd-sized batches through
the model's own data preprocessor."""
import functools
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
SEG_CONFIGS = osp.join(REPO, 'configs', 'seg')


def _mmseg_config_dir() -> str:
    import mmseg
    return osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')


def load_config(path: str):
    """``path``: 'mmseg::<rel>' for a stock config, else relative to
    ``configs/seg``."""
    from mmengine import Config
    if path.startswith('mmseg::'):
        return Config.fromfile(
            osp.join(_mmseg_config_dir(), path[len('mmseg::'):]))
    return Config.fromfile(osp.join(SEG_CONFIGS, path))


def build_model(cfg, odd_sizes: bool = False, init: bool = True):
    """Build ``cfg.model`` without pretrained weights, SyncBN reverted to BN
    as mmengine's Runner does when not distributed.  ``odd_sizes``: pad a
    training batch only to its largest image (no fixed crop size), so odd
    input sizes reach the network.  ``init``: run ``init_weights()`` as the
    Runner does (seconds of CPU on R-101; not needed to count)."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    if odd_sizes:
        cfg.model.data_preprocessor.size = None
        cfg.model.data_preprocessor.size_divisor = 1
    model = MODELS.build(cfg.model)
    if init:
        model.init_weights()
    return revert_sync_batchnorm(model)


@functools.lru_cache(maxsize=None)
def stock_param_count(path: str) -> dict:
    """Parameters of a stock mmseg config's model ('mmseg::...'): per
    top-level submodule (``backbone``, ``neck``, ``decode_head``, ...) and
    ``'total'``.  Cached: several FaPN configs share a base."""
    model = build_model(load_config(path), init=False)
    counts = {
        name: sum(p.numel() for p in child.parameters())
        for name, child in model.named_children()
    }
    counts['total'] = sum(p.numel() for p in model.parameters())
    return counts


def make_batch(sizes, num_classes: int, seed: int = 0):
    """Raw uint8 images and SegDataSamples with random labels (and a few
    ignored pixels), as a dataloader would give them."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in sizes:
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g,
                                    dtype=torch.uint8))
        label = torch.randint(0, num_classes, (1, h, w), generator=g)
        label[:, :2] = 255  # an ignored strip
        sample = SegDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def num_classes_of(model) -> int:
    head = model.decode_head
    if isinstance(head, torch.nn.ModuleList):
        head = head[-1]
    return head.num_classes


@pytest.fixture
def seg_config():
    return load_config


@pytest.fixture
def seg_model():
    return build_model


@pytest.fixture
def seg_batch():
    return make_batch


@pytest.fixture
def seg_num_classes():
    return num_classes_of


@pytest.fixture
def stock_params():
    return stock_param_count


TRAIN_SIZES = [(45, 61), (39, 58)]  # odd, different: padded to 45x61
TEST_SIZES = [(37, 51), (37, 51)]


def check_loss_and_predict(model, align_params):
    """One training step and one inference on tiny odd-sized batches.

    Checks: every loss is finite and positive; after backward every
    trainable parameter of the neck and heads has a gradient and the FaPN
    deformable convs (``align_params``: name -> parameter) get non-zero
    ones; predictions have each image's size and valid class indices.
    The backbone (stock mmseg code) is frozen for the step: its CPU weight
    gradients would cost most of the test's time and test nothing of
    FaPN.  Returns the losses.
    """
    num_classes = num_classes_of(model)
    model.backbone.requires_grad_(False)
    model.train()
    data = model.data_preprocessor(
        make_batch(TRAIN_SIZES, num_classes), training=True)
    assert tuple(data['inputs'].shape) == (2, 3, 45, 61)
    losses = model.loss(**data)
    loss_terms = {k: v for k, v in losses.items() if 'loss' in k}
    assert loss_terms, losses.keys()
    for k, v in loss_terms.items():
        assert torch.isfinite(v).all() and v.item() > 0, (k, v)
    sum(loss_terms.values()).backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert not missing, f'parameters without gradient: {missing[:5]}'
    assert align_params
    for name, p in align_params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(
            make_batch(TEST_SIZES, num_classes, seed=1), training=False)
        results = model.predict(**data)
    assert len(results) == len(TEST_SIZES)
    for res, (h, w) in zip(results, TEST_SIZES):
        pred = res.pred_sem_seg.data
        assert tuple(pred.shape) == (1, h, w)
        assert pred.min() >= 0 and pred.max() < num_classes
        assert tuple(res.seg_logits.data.shape) == (num_classes, h, w)
    return losses


@pytest.fixture
def seg_loss_predict():
    return check_loss_and_predict
