"""tools/model_converters/d2_fapn_to_mmdet.py, and the converted checkpoint
through ``mim test mmdet`` on generated COCO data."""
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import pytest
import torch
from d2_synthetic import d2_fapn_state_dict, d2_state_dict_from_key_list

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'model_converters', 'd2_fapn_to_mmdet.py')
FRCNN_D2_CFG = osp.join(REPO, 'configs', 'det', 'faster_rcnn',
                        'faster-rcnn_r50_fapn_1x_coco_d2-weights.py')
VENV_BIN = osp.dirname(sys.executable)


def _run_tool(argv):
    """The command line as a user runs it (exit status, stdout, stderr)."""
    return subprocess.run([sys.executable, TOOL, *argv], capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope='module')
def frcnn_d2_file(tmp_path_factory):
    """A synthetic released Faster R-CNN R-50 FaPN checkpoint, saved as
    detectron2 does (``model`` + trainer state).  The classifier bias
    favours class 0 (person) so that boxes pass the 0.05 score threshold
    (uniform scores over 80 classes would not)."""
    d2 = d2_fapn_state_dict('faster_rcnn', seed=7)
    d2['roi_heads.box_predictor.cls_score.bias'][:] = 0
    d2['roi_heads.box_predictor.cls_score.bias'][0] = 10
    path = tmp_path_factory.mktemp('d2') / 'model_final.pth'
    torch.save({'model': d2, 'iteration': 89999}, path)
    return str(path), d2


@pytest.fixture(scope='module')
def converted_frcnn(frcnn_d2_file, tmp_path_factory):
    """The tool run once on the synthetic checkpoint: (dst, exit code,
    stdout)."""
    src, _ = frcnn_d2_file
    dst = tmp_path_factory.mktemp('converted') / 'out' / 'frcnn_d2.pth'
    proc = _run_tool([src, str(dst), '--task', 'det'])
    return str(dst), proc.returncode, proc.stdout


def test_cli_converts_and_reports(frcnn_d2_file, converted_frcnn):
    _, d2 = frcnn_d2_file
    dst, code, out = converted_frcnn
    assert code == 0
    assert 'faster-rcnn_r50_fapn_1x_coco_d2-weights.py' in out
    assert 'UNUSED source keys: 0' in out
    assert 'UNFILLED target keys: 0' in out
    assert 'pixel_mean: input normalisation' in out
    assert 'result: OK' in out
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['d2_model'] == 'faster_rcnn'
    from mmdet.datasets import CocoDataset
    assert ckpt['meta']['dataset_meta']['classes'] == \
        CocoDataset.METAINFO['classes']
    state = ckpt['state_dict']
    assert torch.equal(state['neck.align_modules.0.dcn.conv_offset.weight'],
                       d2['backbone.fan_align2.dcpack_L2.conv_offset_mask.'
                          'weight'])
    assert torch.equal(state['backbone.layer3.5.bn3.running_var'],
                       d2['backbone.bottom_up.res4.5.conv3.norm.'
                          'running_var'])


def test_cli_failure_exit_code_and_report(tmp_path):
    d2 = d2_fapn_state_dict('point_rend_semantic', with_buffers=False)
    d2['sem_seg_head.point_head.fc4.weight'] = torch.zeros(256, 256, 1)
    d2['sem_seg_head.aux_head.weight'] = torch.zeros(19, 256, 1, 1)
    src = tmp_path / 'model_final.pth'
    torch.save({'model': d2}, src)
    dst = tmp_path / 'out.pth'
    proc = _run_tool([str(src), str(dst), '--task', 'det'])
    assert proc.returncode == 1
    assert 'does not match the checkpoint' in proc.stderr
    proc = _run_tool([str(src), str(dst), '--task', 'seg'])
    assert proc.returncode == 1
    err = proc.stderr
    assert 'UNUSED source keys: 1\n    sem_seg_head.aux_head.weight' in err
    # fc4 -> decode_head.1.fcs.3, which the 3-fc point head lacks
    assert ('UNEXPECTED converted keys (not in the model): 1\n'
            '    decode_head.1.fcs.3.conv.weight') in err
    assert not dst.exists()
    proc = _run_tool([str(tmp_path / 'nope.pth'), str(dst)])
    assert proc.returncode == 1
    assert 'nope.pth' in proc.stderr


def _run(args, cwd):
    env = dict(os.environ)
    env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
    env.setdefault('OMP_NUM_THREADS', '2')
    proc = subprocess.run(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


# The real d2-weights config with the data swapped for the toy COCO set, a
# small test scale and fewer proposals, for CPU time (the model, and so the
# converted keys, are unchanged).
CHILD_CFG = '''
_base_ = {base!r}
model = dict(test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))
data_root = {root!r}
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
test_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root,
                 ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/'), pipeline=test_pipeline))
test_evaluator = dict(ann_file=data_root +
                      'annotations/instances_val2017.json')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root,
                 ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/')))
'''


@pytest.mark.slow
def test_converted_faster_rcnn_through_mim_test(converted_frcnn, tmp_path):
    from mmfapn.datasets import write_toy_coco
    ckpt, code, _ = converted_frcnn
    assert code == 0
    data = write_toy_coco(str(tmp_path / 'coco'), num_train=1, num_val=2,
                          height=61, width=93, seed=3)
    cfg = tmp_path / 'faster-rcnn_d2-weights_toy.py'
    cfg.write_text(CHILD_CFG.format(base=FRCNN_D2_CFG,
                                    root=data['root'] + '/'))
    preds = tmp_path / 'preds.pkl'
    log = _run([osp.join(VENV_BIN, 'mim'), 'test', 'mmdet', str(cfg),
                '--checkpoint', ckpt, '--work-dir', str(tmp_path / 'work'),
                '--out', str(preds)], cwd=str(tmp_path))
    # the checkpoint matched the model exactly
    assert 'missing keys' not in log and 'unexpected key' not in log, log
    assert 'coco/bbox_mAP:' in log, log[-3000:]
    with open(preds, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 2

    # the same model and weights in this process give the same detections
    from mmdet.apis import inference_detector, init_detector
    model = init_detector(str(cfg), ckpt, device='cpu')
    for res in results:
        ours = inference_detector(model, res['img_path']).pred_instances
        dumped = res['pred_instances']
        assert len(ours) == len(dumped['scores']) > 0
        # float32 in two processes (batch 2 there, 1 here): boxes agree to
        # 1e-4 px, not bit for bit
        torch.testing.assert_close(ours.bboxes, dumped['bboxes'], rtol=1e-4,
                                   atol=1e-4)
        torch.testing.assert_close(ours.scores, dumped['scores'], rtol=1e-4,
                                   atol=1e-5)
        assert torch.equal(ours.labels, dumped['labels'])


# --------------------------------------------------------------------------
# MaskFormer + FaPN (mmseg)
# --------------------------------------------------------------------------
KEY_LISTS = {
    'swin-l': osp.join(REPO, 'tests', 'data', 'd2_keys',
                       'maskformer_swinL_fapn_ade20k_d2_keys.tsv'),
    'r101': osp.join(REPO, 'tests', 'data', 'd2_keys',
                     'maskformer_r101_fapn_cocostuff_d2_keys.tsv'),
}
MASKFORMER_D2_CFG = {
    'swin-l': 'maskformer_swin-l_fapn_8xb2-160k_ade20k-640x640_d2-weights.py',
    'r101': 'maskformer_r101_fapn_8xb4-60k_coco-stuff10k-640x640_d2-weights'
    '.py',
}


def test_cli_refuses_unsupported_checkpoints_in_one_line(tmp_path):
    d2 = d2_state_dict_from_key_list(KEY_LISTS['r101'])
    # MaskFormer with its own BasePixelDecoder: not a FaPN model
    plain = {k: v for k, v in d2.items() if '.align_' not in k}
    src = tmp_path / 'maskformer_R101_plain.pth'
    torch.save({'model': plain}, src)
    dst = tmp_path / 'out.pth'
    proc = _run_tool([str(src), str(dst)])
    assert proc.returncode == 1
    err = proc.stderr
    assert err.count('\n') == 1, err
    assert err.startswith(f'error: {src}: unsupported MaskFormer checkpoint: '
                          "the pixel decoder is not FaPN's "
                          'BasePixelFANDecoder')
    # a checkpoint of something else entirely
    torch.save({'model': {'encoder.layer.0.weight': torch.zeros(2)}}, src)
    proc = _run_tool([str(src), str(dst)])
    assert proc.returncode == 1
    err = proc.stderr
    assert err.count('\n') == 1 and 'not a detectron2 ResNet checkpoint' \
        in err, err
    assert not dst.exists()


# The real d2-weights config evaluated on the generated ADE20K-format data
# (mmseg's ADE20KDataset; the COCO-Stuff model's 171 classes are evaluated
# over ADE20K's 150, which is enough for a pipeline check) at a small size.
MASKFORMER_CHILD_CFG = '''
_base_ = {base!r}
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='ADE20KDataset',
        data_root={root!r},
        reduce_zero_label=True,
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
val_evaluator = test_evaluator
'''


@pytest.mark.slow
@pytest.mark.parametrize('arch', ['r101', 'swin-l'])
def test_converted_maskformer_through_mim_test(arch, tmp_path):
    """A synthetic released MaskFormer + FaPN checkpoint, converted by the
    tool, runs through ``mim test mmseg``.  Every query's class logits
    favour class 0 (wall), so the model must predict wall everywhere: then
    mmseg's aAcc is exactly the wall fraction of the generated labels,
    which checks that the converted weights drive the predictions."""
    import numpy as np
    from PIL import Image

    from mmfapn.datasets import write_toy_ade
    d2 = d2_state_dict_from_key_list(KEY_LISTS[arch], seed=5)
    d2['sem_seg_head.predictor.class_embed.bias'][0] = 30.0
    src = tmp_path / 'model_final.pth'
    torch.save({'model': d2, 'iteration': 159999}, src)
    del d2
    ckpt = tmp_path / 'converted.pth'
    proc = _run_tool([str(src), str(ckpt)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert MASKFORMER_D2_CFG[arch] in out and 'result: OK' in out, out
    src.unlink()

    data = write_toy_ade(str(tmp_path / 'ade'), num_train=0, num_val=2,
                         height=61, width=83, seed=4)
    labels = [np.asarray(Image.open(lbl)) for _, lbl in data['validation']]
    valid = sum(int((lab > 0).sum()) for lab in labels)  # 0: ignored
    wall = sum(int((lab == 1).sum()) for lab in labels)  # ADE id 1: wall
    assert 0 < wall < valid
    cfg = tmp_path / f'maskformer_{arch}_d2-weights_toy.py'
    base = osp.join(REPO, 'configs', 'seg', 'maskformer',
                    MASKFORMER_D2_CFG[arch])
    cfg.write_text(MASKFORMER_CHILD_CFG.format(base=base,
                                               root=data['root']))
    log = _run([osp.join(VENV_BIN, 'mim'), 'test', 'mmseg', str(cfg),
                '--checkpoint', str(ckpt), '--work-dir',
                str(tmp_path / 'work')], cwd=str(tmp_path))
    assert 'missing keys' not in log and 'unexpected key' not in log, log
    found = re.search(r'aAcc: ([0-9.]+)\s+mIoU: ([0-9.]+)', log)
    assert found, log[-3000:]
    a_acc = float(found.group(1))
    assert a_acc == pytest.approx(100 * wall / valid, abs=0.01)
    print(f'{arch}: mim test mmseg aAcc {a_acc} = wall fraction '
          f'{100 * wall / valid:.2f}')
