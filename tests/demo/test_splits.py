"""mmfapn.demo.splits: three disjoint splits, read by mmseg's
CityscapesDataset."""
import itertools

import cv2
import numpy as np
import pytest

from mmfapn.demo.splits import SPLITS, image_digests, write_demo_splits


@pytest.fixture(scope='module')
def splits(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('splits') / 'toycity')
    paths = write_demo_splits(root, num_train=6, num_val=3, num_test=4,
                              height=24, width=40, seed=0, num_classes=5)
    return root, paths


def test_counts_and_names(splits):
    root, paths = splits
    assert {s: len(p) for s, p in paths.items()} == dict(train=6, val=3,
                                                         test=4)
    for split in SPLITS:
        names = sorted(image_digests(root, split))
        assert names == [f'toycity_{i:06d}_000019_leftImg8bit.png'
                         for i in range(len(paths[split]))]


def test_splits_share_no_image(splits):
    root, paths = splits
    digests = {s: image_digests(root, s) for s in SPLITS}
    # pixels too, not only the encoded bytes
    pixels = {
        s: {cv2.imread(p).tobytes() for p in paths[s]} for s in SPLITS
    }
    for a, b in itertools.combinations(SPLITS, 2):
        assert not set(digests[a].values()) & set(digests[b].values()), \
            (a, b)
        assert not pixels[a] & pixels[b], (a, b)
    for s in SPLITS:  # and no duplicate inside a split
        assert len(set(digests[s].values())) == len(digests[s])


def test_cityscapes_dataset_reads_each_split(splits):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    root, paths = splits
    init_default_scope('mmseg')
    for split in SPLITS:
        ds = DATASETS.build(dict(
            type='CityscapesDataset', data_root=root,
            data_prefix=dict(img_path=f'leftImg8bit/{split}',
                             seg_map_path=f'gtFine/{split}'),
            pipeline=[]))
        assert len(ds) == len(paths[split])
        info = ds.get_data_info(0)
        label = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
        assert label.shape == (24, 40) and label.dtype == np.uint8


def test_bad_count_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match='num_test must be a positive int, '
                       'got 0'):
        write_demo_splits(str(tmp_path / 'x'), 2, 2, 0, 16, 16, 0, 3)
