"""The toy COCO writer: read by mmdet's own CocoDataset and
CocoPanopticDataset, polygons that rasterise back to the objects exactly,
panoptic PNGs consistent with their JSON, COCO's category ids, determinism,
argument errors, CLI."""
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mmfapn.datasets import write_toy_coco
from mmfapn.datasets.toy_coco import (COCO_STUFF_IDS, COCO_THING_IDS,
                                      coco_categories, mask_to_polygons)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
H, W = 45, 67  # odd sizes


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_coco')
    return write_toy_coco(str(root), num_train=3, num_val=2, height=H,
                          width=W, seed=3, num_classes=5)


def _rasterise(polygons, h, w):
    return mask_utils.decode(mask_utils.merge(
        mask_utils.frPyObjects(polygons, h, w))).astype(bool)


def _panoptic_ids(path):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 256**2 * bgr[..., 0]


def _fill_holes_ref(mask):
    """Independent hole filling: background = 4-connected to the border."""
    from scipy import ndimage
    return ndimage.binary_fill_holes(mask)


def test_layout_and_mmdet_datasets(toy, mmdet_scope):
    from mmdet.datasets import CocoDataset, CocoPanopticDataset
    root = toy['root']
    assert toy['instances_train'] == osp.join(
        root, 'annotations', 'instances_train2017.json')
    assert toy['panoptic_val_dir'] == osp.join(root, 'annotations',
                                               'panoptic_val2017')
    assert toy['val_images'][0] == osp.join(root, 'val2017',
                                            '000000100001.jpg')
    ins = CocoDataset(
        data_root=root, ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True,
                 poly2mask=False),
            dict(type='PackDetInputs')
        ])
    assert len(ins) == 3
    sample = ins[0]
    gt = sample['data_samples'].gt_instances
    assert tuple(sample['inputs'].shape) == (3, H, W)
    assert len(gt) > 0 and gt.masks.height == H and gt.masks.width == W
    assert int(gt.labels.max()) < 5  # the first five COCO classes
    pan = CocoPanopticDataset(
        data_root=root, ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadPanopticAnnotations'),
            dict(type='PackDetInputs')
        ])
    assert len(pan) == 2
    sample = pan[1]['data_samples']
    sem = sample.gt_sem_seg.sem_seg
    assert tuple(sem.shape) == (1, H, W)
    classes = pan.metainfo['classes']
    # things 0..4, stuff 'road' and 'sky-other-merged'; no void pixel
    present = {classes[i] for i in sem.unique().tolist()}
    assert present <= set(classes[:5]) | {'road', 'sky-other-merged'}
    assert {'road', 'sky-other-merged'} & present
    assert len(sample.gt_instances) == len(
        [s for s in json.load(open(toy['panoptic_val']))['annotations'][1]
         ['segments_info'] if s['category_id'] in COCO_THING_IDS])


def test_categories_are_cocos(mmdet_scope):
    from mmdet.datasets import CocoDataset, CocoPanopticDataset
    things = coco_categories()
    assert [c['name'] for c in things] == list(
        CocoDataset.METAINFO['classes'])
    assert [c['id'] for c in things] == list(COCO_THING_IDS)
    assert (things[0]['id'], things[-1]['id']) == (1, 90)
    assert things[0]['supercategory'] == 'person'
    assert things[-1]['supercategory'] == 'indoor'
    everything = coco_categories(panoptic=True)
    assert [c['name'] for c in everything] == list(
        CocoPanopticDataset.METAINFO['classes'])
    assert [c['id'] for c in everything[80:]] == list(COCO_STUFF_IDS)
    assert sum(c['isthing'] for c in everything) == 80
    assert len(everything) == 133


def test_polygons_rasterise_to_the_objects(toy):
    """Each instance's polygons, decoded by pycocotools, give the object's
    visible pixels from the panoptic PNG with holes filled; area and box
    match that mask."""
    for split in ('train', 'val'):
        ins = json.load(open(toy[f'instances_{split}']))
        pan = json.load(open(toy[f'panoptic_{split}']))
        by_image = {}
        for ann in ins['annotations']:
            by_image.setdefault(ann['image_id'], []).append(ann)
        for pan_ann in pan['annotations']:
            ids = _panoptic_ids(
                osp.join(toy[f'panoptic_{split}_dir'], pan_ann['file_name']))
            things = [s for s in pan_ann['segments_info']
                      if s['category_id'] in COCO_THING_IDS]
            anns = by_image[pan_ann['image_id']]
            assert len(anns) == len(things) > 0
            for seg, ann in zip(things, anns):
                assert ann['category_id'] == seg['category_id']
                assert ann['iscrowd'] == 0
                visible = ids == seg['id']
                covered = _fill_holes_ref(visible)
                polys = ann['segmentation']
                assert all(len(p) >= 6 and len(p) % 2 == 0 for p in polys)
                np.testing.assert_array_equal(_rasterise(polys, H, W),
                                              covered)
                assert ann['area'] == covered.sum()
                ys, xs = np.nonzero(covered)
                assert ann['bbox'] == [xs.min(), ys.min(),
                                       xs.max() + 1 - xs.min(),
                                       ys.max() + 1 - ys.min()]


def test_panoptic_png_matches_json(toy):
    pan = json.load(open(toy['panoptic_train']))
    images = {im['id']: im for im in pan['images']}
    for ann in pan['annotations']:
        assert ann['file_name'] == images[ann['image_id']][
            'file_name'].replace('.jpg', '.png')
        ids = _panoptic_ids(osp.join(toy['panoptic_train_dir'],
                                     ann['file_name']))
        segs = {s['id']: s for s in ann['segments_info']}
        # every pixel belongs to a listed segment (no void), areas exact
        assert set(np.unique(ids).tolist()) == set(segs)
        for seg_id, seg in segs.items():
            assert seg['area'] == int((ids == seg_id).sum())
        stuff = {s['category_id'] for s in segs.values()
                 if s['category_id'] not in COCO_THING_IDS}
        assert stuff <= {149, 187} and stuff  # road, sky-other-merged


def test_boundary_rich_objects(toy):
    """Thin bars and dots are present: objects a few pixels across."""
    ins = json.load(open(toy['instances_train']))
    ins_val = json.load(open(toy['instances_val']))
    boxes = [a['bbox'] for a in ins['annotations'] + ins_val['annotations']]
    assert min(min(b[2], b[3]) for b in boxes) <= 4


@pytest.mark.parametrize('mask, expected', [
    ([[1]], [[0, 0, 0, 1, 1, 1, 1, 0]]),
    ([[0, 0, 0], [0, 1, 1], [0, 0, 0]], [[1, 1, 1, 2, 3, 2, 3, 1]]),
])
def test_mask_to_polygons_hand_worked(mask, expected):
    """Vertices on pixel corners: a pixel (y, x) spans (x, y)..(x+1, y+1)."""
    polys = mask_to_polygons(np.array(mask, bool))
    assert len(polys) == 1

    def corners(p):
        return {tuple(p[i:i + 2]) for i in range(0, len(p), 2)}

    assert corners(polys[0]) == corners(expected[0])


def test_mask_to_polygons_shapes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((9, 11)) < 0.4
        polys = mask_to_polygons(mask)
        np.testing.assert_array_equal(
            _rasterise(polys, 9, 11) if polys else np.zeros((9, 11), bool),
            _fill_holes_ref(mask))
    # two components and a ring: two polygons, the hole filled
    ring = np.zeros((7, 9), bool)
    ring[1:6, 1:6] = True
    ring[3, 3] = False
    ring[2, 7] = True
    polys = mask_to_polygons(ring)
    assert len(polys) == 2
    expected = ring.copy()
    expected[3, 3] = True
    np.testing.assert_array_equal(_rasterise(polys, 7, 9), expected)
    assert mask_to_polygons(np.zeros((4, 4), bool)) == []


def test_deterministic_and_splits_differ(tmp_path):
    a = write_toy_coco(str(tmp_path / 'a'), num_train=2, num_val=1,
                       height=40, width=41, seed=7)
    b = write_toy_coco(str(tmp_path / 'b'), num_train=2, num_val=1,
                       height=40, width=41, seed=7)
    c = write_toy_coco(str(tmp_path / 'c'), num_train=2, num_val=1,
                       height=40, width=41, seed=8)
    for key in ('instances_train', 'panoptic_val'):
        assert open(a[key]).read() == open(b[key]).read()
    assert open(a['instances_train']).read() != open(
        c['instances_train']).read()
    img = [cv2.imread(p) for p in a['train_images'] + a['val_images']]
    assert not np.array_equal(img[0], img[1])
    assert not np.array_equal(img[0], img[2])
    np.testing.assert_array_equal(img[0], cv2.imread(b['train_images'][0]))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(num_train=-1), ValueError, 'num_train must be >= 0, got -1'),
    (dict(height=4), ValueError, 'height must be >= 8, got 4'),
    (dict(width=2.5), TypeError, 'width must be an int, got 2.5'),
    (dict(num_classes=81), ValueError,
     r'num_classes must be in \[1, 80\], got 81'),
    (dict(seed=True), TypeError, 'seed must be an int, got True'),
])
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        write_toy_coco(str(tmp_path), **kwargs)
    with pytest.raises(TypeError, match='root must be a path, got 3'):
        write_toy_coco(3)


def test_cli(tmp_path):
    """The command line as a user runs it."""
    tool = osp.join(ROOT, 'tools', 'data', 'make_coco_toy.py')
    proc = subprocess.run(
        [sys.executable, tool, str(tmp_path / 'out'), '--num-train', '2',
         '--num-val', '1', '--height', '33', '--width', '35',
         '--num-classes', '2'],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'wrote 2 train and 1 val images (33x35' in proc.stdout
    ann = json.load(open(tmp_path / 'out' / 'annotations' /
                         'instances_val2017.json'))
    assert ann['images'][0]['height'] == 33
    assert {a['category_id'] for a in ann['annotations']} <= {1, 2}
    assert (tmp_path / 'out' / 'annotations' / 'panoptic_train2017' /
            '000000000002.png').is_file()
