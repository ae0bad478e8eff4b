"""The toy ADE20K writer: on-disk layout read by mmseg's own ADE20KDataset
(with its reduce_zero_label), label content, determinism, argument errors,
CLI."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmfapn.datasets import write_toy_ade

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_read_by_mmseg_ade20k_dataset(tmp_path, mmseg_scope):
    from mmseg.datasets import ADE20KDataset
    info = write_toy_ade(str(tmp_path), num_train=3, num_val=2, height=33,
                         width=71, seed=1)
    assert info['training'][0][0].endswith(
        'images/training/ADE_train_00000001.jpg')
    assert info['validation'][1][1].endswith(
        'annotations/validation/ADE_val_00000002.png')
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')
    ]
    datasets = {
        split: ADE20KDataset(
            data_root=str(tmp_path),
            data_prefix=dict(img_path=f'images/{split}',
                             seg_map_path=f'annotations/{split}'),
            pipeline=pipeline)
        for split in ('training', 'validation')
    }
    assert len(datasets['training']) == 3
    assert len(datasets['validation']) == 2
    assert len(datasets['training'].metainfo['classes']) == 150
    sample = datasets['training'][0]
    assert tuple(sample['inputs'].shape) == (3, 33, 71)
    seg = sample['data_samples'].gt_sem_seg.data.numpy()[0]
    raw = cv2.imread(info['training'][0][1], cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2 and raw.dtype == np.uint8
    # reduce_zero_label: "other" (0) -> 255, id k -> k - 1
    expected = np.where(raw == 0, 255, raw.astype(np.int64) - 1)
    np.testing.assert_array_equal(seg, expected)
    assert (seg == 255).any() and (seg == 0).any()  # other, wall


def test_label_content(tmp_path):
    info = write_toy_ade(str(tmp_path), num_train=6, num_val=0, height=64,
                         width=96)
    maps = [cv2.imread(p, cv2.IMREAD_UNCHANGED) for _, p in info['training']]
    values = np.unique(np.stack(maps))
    assert set(values.tolist()) <= set(range(151))
    for m in maps:
        # the top band (4 of 64 rows) is "other" (0), nothing else is
        assert (m[:4] == 0).all()
        assert (m[4:] != 0).all()
        assert (m[4:] == 1).any()  # wall background
        assert (m[4:] > 1).any()  # objects
    assert len(set(values.tolist()) - {0, 1}) >= 5
    assert not np.array_equal(maps[0], maps[1])


def test_deterministic_and_splits_disjoint(tmp_path):
    a = write_toy_ade(str(tmp_path / 'a'), 2, 2, 40, 41, seed=3)
    b = write_toy_ade(str(tmp_path / 'b'), 2, 2, 40, 41, seed=3)
    for (ia, la), (ib, lb) in zip(a['training'] + a['validation'],
                                  b['training'] + b['validation']):
        np.testing.assert_array_equal(cv2.imread(ia), cv2.imread(ib))
        np.testing.assert_array_equal(cv2.imread(la), cv2.imread(lb))
    assert not np.array_equal(
        cv2.imread(a['training'][0][1]), cv2.imread(a['validation'][0][1]))


def test_num_classes_limits_labels(tmp_path):
    info = write_toy_ade(str(tmp_path), num_train=4, num_val=0,
                         num_classes=3)
    values = np.unique(np.stack([cv2.imread(p, cv2.IMREAD_UNCHANGED)
                                 for _, p in info['training']]))
    assert set(values.tolist()) <= {0, 1, 2, 3}


@pytest.mark.parametrize('kwargs, exc, text', [
    (dict(num_classes=151), ValueError,
     'num_classes must be in [2, 150], got 151'),
    (dict(height=4), ValueError, 'height must be >= 8, got 4'),
    (dict(num_val=-1), ValueError, 'num_val must be >= 0, got -1'),
    (dict(width=64.0), TypeError, 'width must be an int, got 64.0'),
    (dict(root=3), TypeError, 'root must be a path, got 3'),
])
def test_bad_arguments(tmp_path, kwargs, exc, text):
    kwargs.setdefault('root', str(tmp_path))
    with pytest.raises(exc) as err:
        write_toy_ade(**kwargs)
    assert text in str(err.value)


def test_cli(tmp_path):
    """The command line as a user runs it."""
    tool = osp.join(ROOT, 'tools', 'data', 'make_ade_toy.py')
    proc = subprocess.run(
        [sys.executable, tool, str(tmp_path), '--num-train', '2', '--num-val',
         '1', '--height', '17', '--width', '23'],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ('wrote 2 training and 1 validation images (17x23)'
            in proc.stdout)
    img = cv2.imread(str(tmp_path / 'images/validation/ADE_val_00000001.jpg'))
    assert img.shape == (17, 23, 3)
