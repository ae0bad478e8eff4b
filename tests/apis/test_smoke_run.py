"""The smoke run end to end, in process, on CPU: a detection, an instance,
a panoptic, a semantic, a MaskFormer and a real-time config each train two
iterations on their generated toy dataset through the config's runner and
are evaluated with the config's metrics (validation at the end of training,
then the test loop), from scratch (no pretrained weights loaded).

A representative sample of configs/ (the by-hand run over all of them is
in docs/user_guides/smoke_run.md); the command line and a user config that
inherits a shipped one are in tests/tools/test_smoke_run_cli.py."""
import os.path as osp

import pytest

from mmfapn.apis import smoke_run

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# config -> (checkpoint name, metric keys expected in val and test,
#            pretrained checkpoint the stock config names)
CASES = {
    'det/retinanet/retinanet_r50_fapn_1x_coco.py':
    ('epoch_1.pth', ['coco/bbox_mAP', 'coco/bbox_mAP_50'],
     'torchvision://resnet50'),
    'det/mask_rcnn/mask-rcnn_r50_fapn_1x_coco.py':
    ('epoch_1.pth', ['coco/bbox_mAP', 'coco/segm_mAP'],
     'torchvision://resnet50'),
    'det/panoptic_fpn/panoptic-fpn_r50_fapn_1x_coco.py':
    ('epoch_1.pth', ['coco_panoptic/PQ', 'coco_panoptic/SQ',
                     'coco_panoptic/RQ'], 'torchvision://resnet50'),
    'seg/sem_fpn/sem-fpn_r50_fapn_4xb4-160k_ade20k-512x512.py':
    ('iter_2.pth', ['aAcc', 'mIoU', 'mAcc'], 'open-mmlab://resnet50_v1c'),
    'seg/maskformer/maskformer_r50_fapn_8xb2-160k_ade20k-512x512.py':
    ('iter_2.pth', ['aAcc', 'mIoU', 'mAcc'], 'torchvision://resnet50'),
    'seg/fapn_realtime/fapn-rt_r18_4xb4-40k_cityscapes-512x1024.py':
    ('iter_2.pth', ['aAcc', 'mIoU', 'mAcc'], 'torchvision://resnet18'),
}


# the test loop after training: once (CPU budget); the validation at the
# end of training evaluates every case
WITH_TEST = 'det/mask_rcnn/mask-rcnn_r50_fapn_1x_coco.py'


@pytest.mark.slow
@pytest.mark.parametrize('config', list(CASES))
def test_smoke_run_trains_and_evaluates(config, tmp_path):
    ckpt_name, keys, pretrained = CASES[config]
    with_test = config == WITH_TEST
    result = smoke_run(
        osp.join(REPO, 'configs', config), work_dir=str(tmp_path),
        iters=2, image_size=64, num_val=1, test=with_test)
    assert result['iters'] == 2
    assert result['checkpoint'] == str(tmp_path / ckpt_name)
    assert osp.isfile(result['checkpoint'])
    assert osp.isfile(result['log_file'])
    assert osp.isfile(result['config_dump'])
    assert (result['test'] is None) == (not with_test)
    for split in ('val', 'test') if with_test else ('val', ):
        metrics = result[split]
        assert metrics is not None and set(keys) <= set(metrics), \
            (split, metrics)
        for key in keys:
            value = metrics[key]
            # COCO mAP in [0, 1] (-1: no ground truth of that size), PQ and
            # mmseg's percentages in [0, 100]
            assert value == -1 or 0.0 <= value <= 100.0, (key, value)
    assert result['dropped'] == [pretrained]
    assert result['data_root'] == str(tmp_path / 'data' / result['kind'])
