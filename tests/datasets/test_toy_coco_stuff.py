"""The toy COCO-Stuff-10K writer: mmseg's stock COCOStuffDataset (the
coco-stuff10k.py settings) reads it unchanged, with reduce_zero_label."""
import cv2
import numpy as np
import pytest

from mmfapn.datasets.toy_coco_stuff import write_toy_coco_stuff


def test_layout_and_stock_dataset(tmp_path):
    info = write_toy_coco_stuff(str(tmp_path), num_train=3, num_val=2,
                                height=33, width=47, num_classes=5)
    assert [len(info[s]) for s in ('train2014', 'test2014')] == [3, 2]
    img, ann = info['train2014'][0]
    assert img == str(tmp_path / 'images/train2014/'
                      'COCO_train2014_000000000001.jpg')
    assert ann == str(tmp_path / 'annotations/train2014/'
                      'COCO_train2014_000000000001_labelTrainIds.png')
    labels = cv2.imread(ann, cv2.IMREAD_UNCHANGED)
    assert labels.shape == (33, 47) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4, 81}
    assert (labels[:2] == 0).all() and (labels == 81).any()

    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(
        type='COCOStuffDataset', data_root=str(tmp_path),
        reduce_zero_label=True,
        data_prefix=dict(img_path='images/test2014',
                         seg_map_path='annotations/test2014'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', reduce_zero_label=True),
                  dict(type='PackSegInputs')]))
    assert len(ds) == 2
    seg = ds[0]['data_samples'].gt_sem_seg.data.numpy()
    # 0 (unlabelled) -> 255, id k -> class k - 1 (80: the first stuff class)
    assert set(np.unique(seg)) <= {0, 1, 2, 3, 80, 255}
    assert (seg == 255).any() and (seg == 80).any()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='num_classes must be in'):
        write_toy_coco_stuff(str(tmp_path), num_classes=1)
    with pytest.raises(TypeError, match='root must be a path'):
        write_toy_coco_stuff(None)
