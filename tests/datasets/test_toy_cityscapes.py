"""The toy Cityscapes writer: on-disk format read by mmseg's own
CityscapesDataset, label content, determinism, argument errors, CLI."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmfapn.datasets import write_toy_cityscapes

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _dataset(root, split, pipeline):
    from mmseg.datasets import CityscapesDataset
    return CityscapesDataset(
        data_root=root,
        data_prefix=dict(
            img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}'),
        pipeline=pipeline)


def test_read_by_mmseg_cityscapes_dataset(tmp_path, mmseg_scope):
    info = write_toy_cityscapes(
        str(tmp_path), num_train=3, num_val=2, height=33, width=70, seed=1)
    assert len(info['train']) == 3 and len(info['val']) == 2
    assert info['train'][0][0].endswith(
        'leftImg8bit/train/toycity/toycity_000000_000019_leftImg8bit.png')
    assert info['val'][1][1].endswith(
        'gtFine/val/toycity/toycity_000001_000019_gtFine_labelTrainIds.png')
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ]
    train = _dataset(str(tmp_path), 'train', pipeline)
    val = _dataset(str(tmp_path), 'val', pipeline)
    assert len(train) == 3 and len(val) == 2
    assert len(train.metainfo['classes']) == 19
    sample = train[0]
    assert tuple(sample['inputs'].shape) == (3, 33, 70)
    seg = sample['data_samples'].gt_sem_seg.data.numpy()[0]
    on_disk = cv2.imread(info['train'][0][1], cv2.IMREAD_UNCHANGED)
    assert on_disk.ndim == 2 and on_disk.dtype == np.uint8
    np.testing.assert_array_equal(seg, on_disk)


def test_label_content(tmp_path):
    info = write_toy_cityscapes(
        str(tmp_path), num_train=6, num_val=0, height=64, width=128)
    maps = [cv2.imread(p, cv2.IMREAD_UNCHANGED) for _, p in info['train']]
    values = np.unique(np.stack(maps))
    assert set(values.tolist()) <= set(range(19)) | {255}
    for m in maps:
        # bottom ego strip (4 rows of 64) is ignore, nothing else is
        assert (m[-4:] == 255).all()
        assert (m[:-4] != 255).all()
        assert (m[:-4] == 0).any()  # road background
        assert (m[:-4] > 0).any()  # objects
    # several object classes appear across the set
    assert len(set(values.tolist()) - {0, 255}) >= 5
    # every image differs, train and val differ
    assert not np.array_equal(maps[0], maps[1])


def test_deterministic_and_splits_disjoint(tmp_path):
    a = write_toy_cityscapes(str(tmp_path / 'a'), 2, 2, 40, 41, seed=3)
    b = write_toy_cityscapes(str(tmp_path / 'b'), 2, 2, 40, 41, seed=3)
    for (ia, la), (ib, lb) in zip(a['train'] + a['val'],
                                  b['train'] + b['val']):
        np.testing.assert_array_equal(cv2.imread(ia), cv2.imread(ib))
        np.testing.assert_array_equal(cv2.imread(la), cv2.imread(lb))
    assert not np.array_equal(
        cv2.imread(a['train'][0][0]), cv2.imread(a['val'][0][0]))


def test_num_classes_limits_labels(tmp_path):
    info = write_toy_cityscapes(
        str(tmp_path), num_train=4, num_val=0, num_classes=3)
    values = np.unique(
        np.stack([cv2.imread(p, cv2.IMREAD_UNCHANGED)
                  for _, p in info['train']]))
    assert set(values.tolist()) <= {0, 1, 2, 255}


@pytest.mark.parametrize('kwargs, exc, text', [
    (dict(num_classes=20), ValueError, 'num_classes must be in [2, 19], '
     'got 20'),
    (dict(num_classes=1), ValueError, 'got 1'),
    (dict(height=4), ValueError, 'height must be >= 8, got 4'),
    (dict(num_train=-1), ValueError, 'num_train must be >= 0, got -1'),
    (dict(width=64.0), TypeError, 'width must be an int, got 64.0'),
])
def test_bad_arguments(tmp_path, kwargs, exc, text):
    with pytest.raises(exc) as err:
        write_toy_cityscapes(str(tmp_path), **kwargs)
    assert text in str(err.value)


def test_cli(tmp_path):
    """The command line as a user runs it."""
    tool = osp.join(ROOT, 'tools', 'data', 'make_cityscapes_toy.py')
    proc = subprocess.run(
        [sys.executable, tool, str(tmp_path), '--num-train', '2', '--num-val',
         '1', '--height', '17', '--width', '23'],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'wrote 2 train and 1 val images (17x23)' in proc.stdout
    img = cv2.imread(
        str(tmp_path / 'leftImg8bit/val/toycity/'
            'toycity_000000_000019_leftImg8bit.png'))
    assert img.shape == (17, 23, 3)
