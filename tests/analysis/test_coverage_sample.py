"""A fixed, diverse sample of the stock mmdet/mmseg configs with an FPN run
through the FaPN coverage check (:func:`mmfapn.analysis.coverage.
check_config`, the code of ``tools/analysis/fapn_coverage.py``), plus the
check's own parts: discovery, the FPN -> FaPN swap, attribution, resuming
and the report."""
import json
import math

import pytest
import torch

from mmfapn.analysis import coverage, coverage_report, coverage_sweep
from mmfapn.analysis.coverage_batch import check_results

# (config, task, what it exercises); the light backbones of each kind
# where mmdet ships one, to keep the test short
SAMPLE = {
    'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py':
    ('bbox', 'start_level=1, extra convs on_input'),
    'mmdet::fcos/fcos_r18_fpn_gn-head-center-normbbox-centeronreg-giou_'
    '8xb8-amp-lsj-200e_coco.py':
    ('bbox', 'extra convs on_output, relu_before_extra_convs'),
    'mmdet::atss/atss_r18_fpn_8xb8-amp-lsj-200e_coco.py':
    ('bbox', 'extra convs on_output'),
    'mmdet::centernet/centernet-update_r18_fpn_8xb8-amp-lsj-200e_coco.py':
    ('bbox', 'anchor-free'),
    'mmdet::rpn/rpn_r50_fpn_1x_coco.py': ('bbox', 'RPN only'),
    'mmdet::faster_rcnn/faster-rcnn_r18_fpn_8xb8-amp-lsj-200e_coco.py':
    ('bbox', 'two-stage, four levels, max-pool P6'),
    'mmdet::libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py':
    ('bbox', 'neck list [FPN, BFP]'),
    'mmdet::cascade_rcnn/cascade-rcnn_r18_fpn_8xb8-amp-lsj-200e_coco.py':
    ('bbox', 'cascade'),
    'mmdet::mask_rcnn/mask-rcnn_r18_fpn_8xb8-amp-lsj-200e_coco.py':
    ('instance', 'two-stage masks'),
    'mmdet::gn/mask-rcnn_r50_fpn_gn-all_2x_coco.py':
    ('instance', 'norm_cfg=GN in the neck'),
    'mmdet::condinst/condinst_r50_fpn_ms-poly-90k_coco_instance.py':
    ('instance', 'single-stage masks'),
    'mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py':
    ('panoptic', ''),
    'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py':
    ('semantic', 'mmseg FPN'),
    'mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py':
    ('semantic', 'mmseg FPN, point head'),
}


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(SAMPLE))
def test_sample_config_works_with_fapn(name):
    keep = {}
    record = coverage.check_config(name, keep=keep)
    assert record['status'] == coverage.OK, record
    assert record['task'] == SAMPLE[name][0]
    assert (record['builds'], record['loss_ok'], record['predict_ok']) == (
        True, True, True)
    model = keep['model']
    # FaPN replaced every FPN, at the place the config has it
    necks = model.neck if isinstance(model.neck, torch.nn.Sequential) \
        else [model.neck]
    assert type(necks[0]).__name__ == 'FaPN'
    assert not [m for m in model.modules() if type(m).__name__ == 'FPN']
    assert len(coverage.fapn_modules(model)) == len(record['fpn_paths'])
    # finite loss, back-propagated into every FAM offset/mask conv
    assert math.isfinite(keep['loss'].item()) and keep['loss'].item() > 0
    convs = coverage.fam_offset_convs(model)
    assert len(convs) == len(necks[0].align_modules) >= 2
    for conv_name, conv in convs.items():
        grad = conv.weight.grad
        assert grad is not None and torch.isfinite(grad).all(), conv_name
        assert grad.abs().sum() > 0, conv_name
    # well-formed predictions (re-checked here: one per image, at its size)
    results, batch = keep['results'], keep['batch']
    check_results(record['toolbox'], model, results, batch)
    assert len(results) == 2
    for res, gt in zip(results, batch['data_samples']):
        h, w = gt.ori_shape
        if record['task'] == 'semantic':
            assert res.pred_sem_seg.data.shape == (1, h, w)
        elif record['task'] == 'panoptic':
            assert res.pred_panoptic_seg.sem_seg.shape == (1, h, w)
        else:
            pred = res.pred_instances
            assert 0 < len(pred) <= coverage.MAX_PER_IMG
            assert pred.bboxes.shape == (len(pred), 4)
            if record['task'] == 'instance':
                assert pred.masks.shape[-2:] == (h, w)
    # FaPN adds parameters over the stock FPN model
    assert record['params_fapn'] > record['params_fpn'] > 0


def test_find_and_swap_every_fpn():
    cfg = dict(type='X', neck=[dict(type='FPN', in_channels=[1, 2],
                                    out_channels=4, num_outs=3),
                               dict(type='BFP')],
               head=dict(inner=dict(type='mmdet.FPN', start_level=1)))
    assert coverage.find_fpns(cfg) == ['model.neck[0]',
                                       'model.head.inner']
    swapped = coverage.swap_fpns(cfg)
    assert swapped['neck'][0] == dict(type='FaPN', in_channels=[1, 2],
                                      out_channels=4, num_outs=3)
    assert swapped['neck'][1] == dict(type='BFP')
    assert swapped['head']['inner'] == dict(type='mmdet.FaPN', start_level=1)
    assert cfg['neck'][0]['type'] == 'FPN'  # the input is not modified
    assert coverage.find_fpns(swapped) == []


def test_list_stock_configs():
    names = coverage.list_stock_configs('mmseg')
    assert 'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py' in names
    assert not [n for n in names if '_base_' in n]
    with pytest.raises(ValueError, match="got 'mmpose::x.py'"):
        coverage.split_name('mmpose::x.py')


def test_prepare_model_cfg_drops_weights_and_bounds_detections():
    cfg = dict(
        backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='x')),
        pretrained='torchvision://resnet50',
        data_preprocessor=dict(batch_augments=[dict(type='Pad')]),
        train_cfg=dict(rcnn=[dict(sampler=dict(type='S', num=512))]),
        test_cfg=dict(rcnn=dict(score_thr=0.05, max_per_img=100)))
    out = coverage.prepare_model_cfg('mmdet', cfg, (96, 128))
    assert out['backbone']['init_cfg'] is None and out['pretrained'] is None
    assert 'batch_augments' not in out['data_preprocessor']
    assert out['train_cfg']['rcnn'][0]['sampler']['num'] == 64
    assert out['test_cfg']['rcnn'] == dict(score_thr=0.0, max_per_img=10)
    assert cfg['test_cfg']['rcnn']['score_thr'] == 0.05  # a copy


@pytest.mark.parametrize('fapn,stock,expected', [
    (dict(stage='loss', error_type='RuntimeError'), {}, coverage.FAIL),
    (dict(stage='loss', error_type='RuntimeError'),
     dict(stage='loss', error_type='RuntimeError',
          error='RuntimeError: foo_impl: implementation for device cpu '
          'not found.'), coverage.NOT_RUNNABLE),
    (dict(stage='loss', error_type='RuntimeError'),
     dict(stage='loss', error_type='KeyError'), coverage.FAIL),
    (dict(stage='predict', error_type='KeyError'),
     dict(stage='build', error_type='ImportError',
          error='ImportError: Failed to import mmpretrain.models'),
     coverage.NOT_RUNNABLE),
    (dict(stage='build', error_type='TypeError'),
     dict(stage='predict', error_type='TypeError'), coverage.FAIL),
])
def test_attribution(fapn, stock, expected):
    status, reason = coverage.attribute(fapn, stock)
    assert status == expected
    if 'cpu not found' in stock.get('error', ''):
        assert reason == 'CUDA-only op'
    if 'mmpretrain' in stock.get('error', ''):
        assert reason == 'optional dependency not installed'


def test_sweep_resumes_and_reports(tmp_path, monkeypatch):
    """Configs already in the output are skipped; identical models run
    once; the report counts each config once."""
    calls = []

    def fake_check(name, keep=None):
        calls.append(name)
        return dict(config=name, toolbox='mmseg', status=coverage.OK,
                    task='semantic', builds=True, loss_ok=True,
                    predict_ok=True, params_fpn=10, params_fapn=15,
                    seconds=1.0, fpn_paths=['model.neck'])

    # the check runs in this process (a thread pool would not see the
    # patch in spawned workers)
    def in_process(names, jobs, timeout, threads, on_record):
        for name in names:
            on_record(coverage.check_config(name))

    monkeypatch.setattr(coverage, 'check_config', fake_check)
    monkeypatch.setattr(coverage_sweep, 'run_in_workers', in_process)
    a = 'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py'
    b = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
    c = 'mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py'
    out = str(tmp_path / 'records.jsonl')
    records = coverage_sweep.sweep([a, c], out, stream=open('/dev/null',
                                                            'w'))
    assert calls == [a]
    assert records[c]['status'] == coverage.NO_FPN
    records = coverage_sweep.sweep([a, b, c], out,
                                   stream=open('/dev/null', 'w'))
    assert calls == [a, b]  # a and c were in the file
    lines = [json.loads(ln) for ln in open(out)]
    # no-FPN records are written at the scan, the others when checked
    assert [r['config'] for r in lines if 'config' in r] == [c, a, b]
    assert coverage_report.summary(records) == dict(
        configs=3, fpn=2, ok=2, fail=0, not_runnable=0, no_fpn=1,
        config_error=0)
    page = coverage_report.render(records)
    assert '**2 of 2 stock configs with an FPN work with FaPN' in page
    assert f'| `{a}` | semantic | yes | yes | yes | 0.00M -> 0.00M (+5)' \
        in page
