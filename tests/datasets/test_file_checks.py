"""Dataset/metric file checks: every error names the file (and the
problem); valid toy COCO files and wrapped datasets pass."""
import json
import os.path as osp

import pytest

from mmfapn.datasets import write_toy_coco
from mmfapn.datasets.file_checks import (check_coco_json,
                                         check_dataset_paths,
                                         check_evaluator_paths,
                                         diagnose_dataset_files,
                                         diagnose_evaluator_files)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_coco_checks')
    return write_toy_coco(str(root), num_train=1, num_val=1, height=33,
                          width=35)


def _coco_cfg(root, ann='annotations/instances_train2017.json', **kw):
    return dict(type='CocoDataset', data_root=root, ann_file=ann,
                data_prefix=dict(img='train2017/'), **kw)


def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def test_valid_files_pass(toy):
    root = toy['root']
    check_dataset_paths(_coco_cfg(root))
    diagnose_dataset_files(_coco_cfg(root))
    pan = dict(type='CocoPanopticDataset', data_root=root,
               ann_file='annotations/panoptic_val2017.json',
               data_prefix=dict(img='val2017/',
                                seg='annotations/panoptic_val2017/'))
    diagnose_dataset_files(dict(type='RepeatDataset', times=3, dataset=pan))
    assert check_coco_json(toy['panoptic_val'], panoptic=True)['images']
    metric = [dict(type='CocoMetric', ann_file=toy['instances_val']),
              dict(type='CocoPanopticMetric', ann_file=toy['panoptic_val'],
                   seg_prefix=toy['panoptic_val_dir'])]
    check_evaluator_paths(metric)
    diagnose_evaluator_files(dict(metrics=metric))


def test_missing_paths_are_named(toy, tmp_path):
    missing = str(tmp_path / 'no_such_root')
    with pytest.raises(FileNotFoundError) as err:
        check_dataset_paths(_coco_cfg(missing))
    assert f"CocoDataset: data_root '{missing}' does not exist" in str(
        err.value)
    assert osp.join(missing, 'annotations/instances_train2017.json') in str(
        err.value)
    with pytest.raises(FileNotFoundError,
                       match="annotation file '.*instances_x.json' does not"):
        check_dataset_paths(_coco_cfg(toy['root'], 'annotations/'
                                      'instances_x.json'))
    cfg = _coco_cfg(toy['root'])
    cfg['data_prefix'] = dict(img='train2018/')
    # found inside a wrapper too
    with pytest.raises(FileNotFoundError,
                       match=r"data_prefix.img folder '.*train2018/' does"):
        check_dataset_paths(dict(type='ConcatDataset', datasets=[
            _coco_cfg(toy['root']), cfg]))
    with pytest.raises(FileNotFoundError,
                       match="CocoPanopticMetric: seg_prefix folder '/nope'"):
        check_evaluator_paths(dict(type='CocoPanopticMetric',
                                   ann_file=toy['panoptic_val'],
                                   seg_prefix='/nope'))
    # remote storage is left to the backend
    check_dataset_paths(_coco_cfg('s3://bucket/coco/'))
    check_dataset_paths(_coco_cfg(missing, backend_args=dict(backend='x')))


@pytest.mark.parametrize('content, panoptic, match', [
    ('{"images": [', False, r'malformed JSON \(Expecting value: line 1'),
    ('[1, 2]', False, 'holds a JSON object .* got a list'),
    ('{"images": [], "annotations": []}', False,
     '"categories" must be a list .* got nothing'),
    ('{"images": {}, "categories": []}', False,
     '"images" must be a list .* got dict'),
    ('{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": []}',
     False, r"images\[0\] lacks \['height', 'width'\]"),
    ('{"images": [], "categories": [{"id": 1, "name": "a"}], '
     '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, '
     '"area": 3, "bbox": [1, 2, 3]}]}', False,
     r'annotations\[0\].bbox must be \[x, y, w, h\], got \[1, 2, 3\]'),
    ('{"images": [], "categories": [{"id": 1, "name": "a"}], '
     '"annotations": [{"image_id": 1, "file_name": "a.png", '
     '"segments_info": [{"id": 1}]}]}', True,
     r"categories\[0\] lacks \['isthing'\]"),
    ('{"images": [], "categories": [{"id": 1, "name": "a", "isthing": 1}], '
     '"annotations": [{"image_id": 1, "file_name": "a.png", '
     '"segments_info": [{"id": 1}]}]}', True,
     r"annotations\[0\].segments_info\[0\] lacks \['category_id', 'bbox'"),
])
def test_malformed_coco_json_is_named(tmp_path, content, panoptic, match):
    path = _write(tmp_path / 'ann.json', content)
    with pytest.raises(ValueError, match=match) as err:
        check_coco_json(path, panoptic=panoptic)
    assert str(err.value).startswith(f'{path}: ')


def test_diagnose_names_the_bad_file(toy, tmp_path):
    root = tmp_path / 'coco'
    (root / 'annotations').mkdir(parents=True)
    (root / 'train2017').mkdir()
    bad = _write(root / 'annotations' / 'instances_train2017.json',
                 '{"images": [], "annotations": []}')
    with pytest.raises(ValueError, match=f'{bad}: "categories" must be'):
        diagnose_dataset_files(_coco_cfg(str(root)))
    # non-COCO dataset types: JSON syntax only
    _write(bad, '{"data_list": []}')
    diagnose_dataset_files(dict(_coco_cfg(str(root)), type='BaseDataset'))
    _write(bad, '{"data_list": ')
    with pytest.raises(ValueError, match=f'{bad}: malformed JSON'):
        diagnose_dataset_files(dict(_coco_cfg(str(root)), type='BaseDataset'))
    with pytest.raises(ValueError, match=f'{bad}: malformed JSON'):
        diagnose_evaluator_files(dict(type='CocoMetric', ann_file=bad))
    _write(bad, json.dumps(dict(images=[], categories=[])))
    diagnose_dataset_files(_coco_cfg(str(root)))  # nothing wrong to report
