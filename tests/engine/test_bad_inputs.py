"""Odd data and mismatched checkpoints: each gives one line naming it.

What each case does on the stock stack is in ``mmfapn/engine/input_checks``;
the tests below pin both the stack's behaviour that the checks exist for
and the messages.
"""
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.runner.checkpoint import load_checkpoint

import mmfapn  # noqa: F401
from mmfapn.datasets import render_scene
from mmfapn.engine import CheckImage, EmptyDatasetError, build_loop_checked
from mmfapn.models import FaPN

REPO = Path(__file__).resolve().parents[2]


def _neck():
    return FaPN([8, 16, 32, 64], 16, num_outs=4)


def _feats(sizes=(16, 8, 4, 2)):
    torch.manual_seed(0)
    return [
        torch.rand(2, c, s, s + 1) for c, s in zip([8, 16, 32, 64], sizes)
    ]


@pytest.mark.parametrize('value,counts', [(float('nan'), '3 NaN and 0 Inf'),
                                          (float('inf'), '0 NaN and 3 Inf'),
                                          (-float('inf'), '0 NaN and 3 Inf')])
def test_nan_inf_named_before_the_deformable_conv(value, counts,
                                                  monkeypatch):
    neck = _neck()
    feats = _feats()
    feats[2][1, 5, 0, :3] = value

    def never(*args, **kwargs):
        raise AssertionError('the deformable conv must not run')

    for fam in neck.align_modules:
        monkeypatch.setattr(fam.dcn, 'forward', never)
    with pytest.raises(ValueError) as info:
        neck(feats)
    assert str(info.value) == (
        f'FaPN: input level 2 (shape (2, 32, 4, 5)) has {counts} values '
        'before the deformable conv; check the input data and '
        'normalisation, or the loss for divergence')


def test_check_finite_switch():
    """check_finite=False skips the check (no host read of the values);
    True checks on every device; None, the default, checks CPU inputs."""
    feats = _feats()
    feats[2][1, 5, 0, :3] = float('nan')
    off = FaPN([8, 16, 32, 64], 16, num_outs=4, check_finite=False)
    outs = off(feats)  # the NaN flows through, unreported
    assert not torch.isfinite(outs[2]).all()
    for flag in (None, True):
        neck = FaPN([8, 16, 32, 64], 16, num_outs=4, check_finite=flag)
        with pytest.raises(ValueError, match='has 3 NaN and 0 Inf values'):
            neck(feats)
    with pytest.raises(ValueError, match="check_finite must be None, True "
                       "or False, got 'cpu'"):
        FaPN([8, 16, 32, 64], 16, num_outs=4, check_finite='cpu')


def test_nan_image_through_a_segmentor(mmseg_scope, tiny_fapn_seg_config):
    cfg = Config.fromfile(tiny_fapn_seg_config)
    model = mmseg_scope.build(cfg.model)
    model.init_weights()
    model.eval()
    image = torch.rand(1, 3, 64, 128)
    image[0, :, 10, 20] = float('nan')
    with pytest.raises(ValueError, match=r'^FaPN: input level 0 \(shape '
                       r'\(1, 64, 16, 32\)\) has \d+ NaN and 0 Inf values '
                       'before the deformable conv'):
        model(image, mode='tensor')
    # finite inputs of any size pass the check
    assert model(torch.rand(1, 3, 65, 97),
                 mode='tensor').shape == (1, 19, 17, 25)


def test_checkpoint_with_other_neck_keys(mmseg_scope, tiny_fapn_seg_config,
                                         tmp_path):
    cfg = Config.fromfile(tiny_fapn_seg_config)
    fapn_model = mmseg_scope.build(cfg.model)
    fpn_cfg = cfg.model.copy()
    fpn_cfg.neck = dict(
        type='FPN', in_channels=[64, 128, 256, 512], out_channels=32,
        num_outs=4)
    fpn_state = mmseg_scope.build(fpn_cfg).state_dict()
    ckpt = tmp_path / 'fpn.pth'
    torch.save({'state_dict': fpn_state}, ckpt)

    own = [k for k in fapn_model.state_dict() if k.startswith('neck.')]
    given = [k for k in fpn_state if k.startswith('neck.')]
    missing = [k for k in own if k not in fpn_state]
    unexpected = sorted(set(given) - set(own))
    line = (f"FaPN 'neck.': checkpoint keys do not match this neck: "
            f'{len(missing)} missing (first: {", ".join(missing[:3])}), '
            f'{len(unexpected)} unexpected (first: '
            f'{", ".join(unexpected[:3])})')
    # 3 levels x (2 FSM + 5 FAM tensors) missing; FPN's 3 laterals and its
    # top output conv (FaPN has none) unexpected
    assert len(missing) == 21 and len(unexpected) == 8

    # strict: mmengine raises, our line first after its header
    with pytest.raises(RuntimeError) as info:
        load_checkpoint(fapn_model, str(ckpt), strict=True, logger='current')
    assert str(info.value).splitlines()[2] == line
    # not strict (the Runner's load_from): a warning with the same line
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        load_checkpoint(fapn_model, str(ckpt), strict=False, logger='current')
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert any(line in m for m in messages), messages
    # matching keys: no message
    torch.save({'state_dict': fapn_model.state_dict()}, ckpt)
    records.clear()
    logger.addHandler(handler)
    try:
        load_checkpoint(fapn_model, str(ckpt), strict=True, logger='current')
    finally:
        logger.removeHandler(handler)
    assert not any('FaPN' in r.getMessage() for r in records)


def _pipeline(color_type='color', check=True):
    from mmseg.registry import TRANSFORMS
    steps = [dict(type='LoadImageFromFile', color_type=color_type)]
    if check:
        steps.append(dict(type='CheckImage'))
    steps += [dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
    return Compose([TRANSFORMS.build(t) for t in steps])


def _write(tmp_path, image, label):
    img, seg = str(tmp_path / 'img.png'), str(tmp_path / 'seg.png')
    cv2.imwrite(img, image)
    cv2.imwrite(seg, label)
    return dict(img_path=img, seg_map_path=seg, reduce_zero_label=False,
                seg_fields=[])


def test_one_pixel_image(mmseg_scope, tmp_path):
    info = _write(tmp_path, np.zeros((1, 1, 3), np.uint8),
                  np.zeros((1, 1), np.uint8))
    # the stack today: mmseg's LoadAnnotations squeezes the label to 0-D
    with pytest.raises(AssertionError,
                       match='The dim of value must be 2 or 3, but got 0'):
        _pipeline(check=False)(dict(info))
    with pytest.raises(ValueError) as err:
        _pipeline()(dict(info))
    assert str(err.value) == (
        f"CheckImage: image '{info['img_path']}' is 1x1 pixels, smaller "
        'than min_size=2 (too small for the backbone and the label '
        'loader); resize or drop it')
    with pytest.raises(ValueError, match='is 40x31 pixels, smaller than '
                       'min_size=32'):
        CheckImage(min_size=32).transform(
            dict(img=np.zeros((40, 31, 3), np.uint8)))


@pytest.mark.parametrize('shape,kind',
                         [((64, 96), 'grayscale (1 channels'),
                          ((64, 96, 4), 'RGBA/BGRA (4 channels')])
def test_grayscale_and_rgba_images(mmseg_scope, tiny_fapn_seg_config,
                                   tmp_path, shape, kind):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, shape, dtype=np.uint8)
    label = rng.integers(0, 19, (64, 96), dtype=np.uint8)
    info = _write(tmp_path, image, label)
    # loaded unchanged: CheckImage names it (without it, RGBA fails in the
    # data preprocessor and grayscale is silently broadcast)
    with pytest.raises(ValueError) as err:
        _pipeline('unchanged')(dict(info))
    assert str(err.value) == (
        f"CheckImage: image '{info['img_path']}' is {kind}, shape "
        f"{shape}); the model expects 3: load it with "
        "LoadImageFromFile(color_type='color'), which converts it")
    # loaded as the stock configs do: 3 channels, and the model runs
    data = _pipeline('color')(dict(info))
    assert tuple(data['inputs'].shape) == (3, 64, 96)
    if len(shape) == 2:  # OpenCV replicates the gray channel
        for c in range(3):
            assert np.array_equal(data['inputs'][c].numpy(), image)
    else:  # and drops alpha
        assert np.array_equal(data['inputs'].permute(1, 2, 0).numpy(),
                              image[..., :3])
    model = mmseg_scope.build(Config.fromfile(tiny_fapn_seg_config).model)
    model.init_weights()
    model.eval()
    out = model.test_step(pseudo_collate([data]))
    assert out[0].pred_sem_seg.data.shape == (1, 64, 96)


def test_non_divisible_size_just_works(mmseg_scope, tiny_fapn_seg_config,
                                       tmp_path):
    scene = render_scene(65, 97, 18, seed=3)
    info = _write(tmp_path, scene.image[..., ::-1].copy(),
                  np.where(scene.semantic == 255, 0, scene.semantic + 1))
    data = _pipeline()(dict(info))
    cfg = Config.fromfile(tiny_fapn_seg_config)
    model = mmseg_scope.build(cfg.model)
    model.init_weights()
    batch = pseudo_collate([data, data])
    losses = model.train_step(batch, build_optim_wrapper(model,
                                                          cfg.optim_wrapper))
    assert torch.isfinite(losses['loss'])
    model.eval()
    feats = model.extract_feat(torch.rand(1, 3, 65, 97))
    assert [tuple(f.shape[-2:]) for f in feats] == [(17, 25), (9, 13),
                                                    (5, 7), (3, 4)]
    out = model.test_step(pseudo_collate([data]))
    assert out[0].pred_sem_seg.data.shape == (1, 65, 97)


@pytest.mark.slow
def test_empty_annotation_list_detection(tmp_path):
    """A COCO file whose ``annotations`` list is empty: mmdet's
    ``filter_empty_gt`` drops every image and the dataset build fails in
    numpy; the tools name the dataset instead."""
    from mmengine.runner import Runner
    (tmp_path / 'train').mkdir()
    images = []
    for i in range(2):
        scene = render_scene(64, 96, 3, seed=i)
        cv2.imwrite(str(tmp_path / 'train' / f'{i}.png'),
                    scene.image[..., ::-1].copy())
        images.append(dict(id=i + 1, file_name=f'{i}.png', height=64,
                           width=96))
    ann = tmp_path / 'empty.json'
    ann.write_text(json.dumps(dict(
        images=images, annotations=[],
        categories=[dict(id=1, name='person')])))
    base = tmp_path / 'det.py'
    base.write_text(
        "_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', "
        f"{str(REPO / 'configs' / '_base_' / 'mmfapn.py')!r}]\n")
    cfg = Config.fromfile(str(base))
    cfg.merge_from_dict(dict(
        model=dict(backbone=dict(depth=18, init_cfg=None),
                   neck=dict(type='FaPN', in_channels=[64, 128, 256, 512],
                             out_channels=16),
                   rpn_head=dict(in_channels=16, feat_channels=16),
                   roi_head=dict(
                       bbox_roi_extractor=dict(out_channels=16),
                       bbox_head=dict(in_channels=16, fc_out_channels=16,
                                      num_classes=1))),
        train_dataloader=dict(
            batch_size=2, num_workers=0, persistent_workers=False,
            dataset=dict(data_root=str(tmp_path), ann_file='empty.json',
                         data_prefix=dict(img='train/'),
                         metainfo=dict(classes=('person', )))),
        work_dir=str(tmp_path / 'work')))
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    with pytest.raises(EmptyDatasetError) as err:
        build_loop_checked(runner, 'train')
    msg = str(err.value)
    assert msg.startswith(
        f"train dataset is empty: CocoDataset data_root='{tmp_path}' "
        f"ann_file='{tmp_path / 'empty.json'}'")
    assert "filter_cfg={'filter_empty_gt': True, 'min_size': 32}" in msg
    assert 'gives 0 samples (an empty annotation list' in msg
    # the stack's own error, which the message replaces
    cause = err.value.__cause__
    assert isinstance(cause, ValueError)
    assert 'need at least one array to concatenate' in str(cause)


@pytest.mark.slow
def test_empty_segmentation_dataset(tiny_fapn_seg_config, tmp_path):
    from mmengine.runner import Runner
    cfg = Config.fromfile(tiny_fapn_seg_config)
    for sub in ('leftImg8bit', 'gtFine'):  # the folders, but no files
        (tmp_path / sub / 'train').mkdir(parents=True)
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(EmptyDatasetError, match="^train dataset is empty: "
                       f"CityscapesDataset data_root='{tmp_path}'"):
        build_loop_checked(runner, 'train')
