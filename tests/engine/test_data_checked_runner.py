"""DataCheckedRunner, built from a repo detection config the way mmdet's
tools/train.py and test.py build it (``RUNNERS.build(cfg)``): a missing
data root or a malformed annotation file fails with one error naming the
file, only for the data a run uses."""
import json
import os.path as osp
import shutil

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'det', 'mask_rcnn',
                  'mask-rcnn_r50_fapn_1x_coco.py')

CHILD = '''
_base_ = [{config!r}]
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]))
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={train_root!r}))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root={val_root!r}))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={val_ann!r})
test_evaluator = val_evaluator
'''


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    from mmfapn.datasets import write_toy_coco
    root = tmp_path_factory.mktemp('toy_coco_runner')
    write_toy_coco(str(root), num_train=2, num_val=1, height=33, width=35)
    return str(root)


def build_runner(tmp_path, train_root, val_root, val_ann=None):
    from mmengine import Config
    from mmengine.registry import RUNNERS
    path = tmp_path / 'child.py'
    path.write_text(CHILD.format(
        config=CONFIG, train_root=train_root, val_root=val_root,
        val_ann=val_ann or osp.join(val_root,
                                    'annotations/instances_val2017.json')))
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(tmp_path / 'work')
    runner = RUNNERS.build(cfg)
    assert type(runner).__name__ == 'DataCheckedRunner'
    return runner


def _copy(root, tmp_path):
    dst = str(tmp_path / 'coco')
    shutil.copytree(root, dst)
    return dst


def test_valid_data_builds(tmp_path, toy_root):
    runner = build_runner(tmp_path, toy_root, toy_root)
    loader = runner.build_dataloader(runner.cfg.train_dataloader)
    assert len(loader.dataset) == 2
    assert runner.test_loop.dataloader.dataset.test_mode


def test_missing_data_root_is_named(tmp_path, toy_root):
    missing = str(tmp_path / 'data' / 'coco')
    runner = build_runner(tmp_path, missing, toy_root)
    with pytest.raises(FileNotFoundError) as err:
        runner.train()
    msg = str(err.value)
    assert f"data_root '{missing}' does not exist" in msg
    assert osp.join(missing, 'annotations/instances_train2017.json') in msg
    # testing does not need the training data
    assert len(runner.test_loop.dataloader.dataset) == 1


def test_malformed_json_is_named(tmp_path, toy_root):
    root = _copy(toy_root, tmp_path)
    ann = osp.join(root, 'annotations', 'instances_train2017.json')
    with open(ann) as f:
        text = f.read()
    with open(ann, 'w') as f:
        f.write(text[:len(text) // 2])  # truncated download
    runner = build_runner(tmp_path, root, toy_root)
    with pytest.raises(ValueError, match=f'{ann}: malformed JSON') as err:
        runner.train()
    # chained to the error mmdet raised, which does not name the file
    assert type(err.value.__cause__).__name__ == 'JSONDecodeError'
    assert ann not in str(err.value.__cause__)


def test_missing_key_is_named(tmp_path, toy_root):
    root = _copy(toy_root, tmp_path)
    ann = osp.join(root, 'annotations', 'instances_train2017.json')
    content = json.load(open(ann))
    del content['categories']
    json.dump(content, open(ann, 'w'))
    runner = build_runner(tmp_path, root, toy_root)
    with pytest.raises(ValueError,
                       match=f'{ann}: "categories" must be a list'):
        runner.train()


def test_evaluator_file_is_named(tmp_path, toy_root):
    bad = str(tmp_path / 'instances_val2017.json')
    with open(bad, 'w') as f:
        f.write('{"images": [], "categories": []')
    runner = build_runner(tmp_path, toy_root, toy_root, val_ann=bad)
    with pytest.raises(ValueError, match=f'{bad}: malformed JSON'):
        runner.test_loop
    missing = str(tmp_path / 'nothing.json')
    runner = build_runner(tmp_path, toy_root, toy_root, val_ann=missing)
    with pytest.raises(FileNotFoundError,
                       match=f"CocoMetric: annotation file '{missing}'"):
        runner.test_loop
