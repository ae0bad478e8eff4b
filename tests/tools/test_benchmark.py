"""tools/analysis/benchmark.py: the command line end to end (JSON, ratios,
progress), the deformable-conv FLOP handle against its formula, the
real-time FaPN MACs against the supplement's FLOPs column, stock configs as
``--compare`` for mmseg and mmdet, and its errors."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from torch import nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis', 'benchmark.py')
RT = osp.join(REPO, 'configs', 'seg', 'fapn_realtime')
RT_MAIN = osp.join(RT, 'fapn-rt_r18_4xb4-40k_cityscapes-768x1536.py')
RT_ROWS = [  # supplement Table 1 rows, and its FLOPs column (G)
    (osp.join(RT, 'ablation',
              f'fapn-rt-abl-{row}_r18_4xb4-40k_cityscapes-768x1536.py'), g)
    for row, g in (('fpn', 44.5), ('fam', 51.0), ('fam-fsm', 51.0),
                   ('fam-fsm-concat', 51.8))
]
# SPEC: FaPN neck (R50 channels) minus mmdet's FPN neck
FAPN_MINUS_FPN = 4442504


@pytest.fixture(scope='module')
def bm():
    spec = importlib.util.spec_from_file_location('mmfapn_benchmark', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    """One torch thread (steadier on a loaded 2-core machine), restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_cli_compare_writes_json(tmp_path):
    """The script as a user runs it: a real-time config against its FPN
    ablation row, one timed step on a tiny odd shape, JSON written."""
    out = tmp_path / 'bench.json'
    proc = subprocess.run([
        sys.executable, SCRIPT, RT_MAIN, '--compare', RT_ROWS[0][0],
        '--shape', '35', '51', '--iters', '1', '--warmup', '1', '--threads',
        '1', '--json', str(out)
    ], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # progress lines (warm-up and timed steps) on stderr
    assert 'warm-up 1/1' in proc.stderr
    assert 'inference step 1/1' in proc.stderr
    report = json.loads(out.read_text())
    fapn, fpn = report['models']
    assert (report['mode'], report['shape'], report['batch']) == ('inference',
                                                                 [35, 51], 1)
    assert report['machine']['torch_threads'] == 1
    assert fapn['params'] == 12635203 and fpn['params'] == 11366675
    for m in (fapn, fpn):
        assert len(m['latency_s']['all']) == 1
        assert m['fps'] == pytest.approx(1 / m['latency_s']['median'])
        assert m['peak_memory_mib'] > 0
        assert m['flops_path'] == 'predict'
    assert 'PythonOp._CountedDeformConv' in fapn['flops_by_operator']
    assert 'PythonOp._CountedDeformConv' not in fpn['flops_by_operator']
    ratio = report['ratio']
    assert ratio['params'] == pytest.approx(12635203 / 11366675)
    assert ratio['flops'] == pytest.approx(fapn['flops'] / fpn['flops'])
    assert ratio['flops'] > 1
    assert 'dense conv' in report['deform_conv_counting']
    assert 'ratio fapn-rt_r18' in proc.stdout and 'MACs' in proc.stdout


class _Wrap(nn.Module):

    def __init__(self, conv: nn.Module, guided: bool) -> None:
        super().__init__()
        self.conv = conv
        self.guided = guided

    def forward(self, x, guide=None):
        return self.conv(x, guide) if self.guided else self.conv(x)


def _analyze(bm, model, inputs):
    from mmengine.analysis import FlopAnalyzer
    with torch.no_grad(), bm.deform_convs_as_single_ops(model):
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.set_op_handle(**bm.DCN_HANDLES)
        analyzer.unsupported_ops_warnings(False)
        return analyzer.by_operator()


def test_deform_conv_counted_as_dense_conv_plus_sampling(bm, one_thread):
    """mmfapn's guided DCNv2, mmcv's DCNv2 and mmcv's DCNv1 against the
    documented formula; the offset convs count as plain convs."""
    from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack

    from mmfapn.ops import GuidedModulatedDeformConv2d
    n, c, h, w, c_out, dg = 2, 16, 7, 9, 24, 4
    x = torch.randn(n, c, h, w)
    positions = n * h * w
    dense = positions * c_out * c * 9
    sampled = positions * c * 9
    offset_conv = positions * 3 * dg * 9 * 8 * 9  # guide has 8 channels

    guided = GuidedModulatedDeformConv2d(
        c, c_out, 3, guide_channels=8, padding=1, deform_groups=dg)
    ops = _analyze(bm, _Wrap(guided, True), (x, torch.randn(n, 8, h, w)))
    assert ops['PythonOp._CountedDeformConv'] == dense + 5 * sampled
    assert ops['conv'] == offset_conv

    mdcn = ModulatedDeformConv2dPack(c, c_out, 3, padding=1, deform_groups=dg)
    ops = _analyze(bm, _Wrap(mdcn, False), (x, ))
    assert ops['PythonOp.ModulatedDeformConv2dFunction'] == (dense +
                                                             5 * sampled)
    assert ops['conv'] == positions * 3 * dg * 9 * c * 9

    dcn = DeformConv2dPack(c, c_out, 3, padding=1, deform_groups=dg)
    ops = _analyze(bm, _Wrap(dcn, False), (x, ))
    assert ops['PythonOp.DeformConv2dFunction'] == dense + 4 * sampled


def test_counting_does_not_change_the_output(bm):
    from mmfapn.models import FeatureAlignModule
    torch.manual_seed(0)
    fam = FeatureAlignModule(16, deform_groups=4)
    torch.nn.init.normal_(fam.dcn.conv_offset.weight, std=0.1)
    lat, coarse = torch.randn(1, 16, 9, 11), torch.randn(1, 16, 5, 6)
    expected = fam(lat, coarse)
    with bm.deform_convs_as_single_ops(fam):
        got = fam(lat, coarse)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert 'forward' not in vars(fam.dcn)  # restored afterwards


def test_realtime_conv_macs_match_supplement_flops(bm, one_thread):
    """Supplement Table 1 FLOPs (44.5, 51.0, 51.0, 51.8 G) are the
    convolution MACs at 1536x768 without the deformable sampling op: with
    every level size a multiple of the stride, conv MACs scale with the
    area, so 1/16 of the area (384x192) times 16 gives them exactly."""
    got = []
    for path, paper_g in RT_ROWS:
        cfg = bm.load_config(path)
        model = bm.build_model(cfg, 'mmseg', (192, 384), None, 'cpu')
        data = bm.make_batch(model, 'mmseg', (192, 384), 1)
        result = bm.count_flops(model, model.data_preprocessor(data, False))
        conv_g = 16 * result['flops_by_operator']['conv'] / 1e9
        assert conv_g == pytest.approx(paper_g, abs=0.05), (path, conv_g)
        got.append(round(conv_g, 3))
    print('conv GMACs at 1536x768:', got)


@pytest.mark.slow
@pytest.mark.parametrize('config,stock,mode', [
    ('configs/seg/point_rend/pointrend_r50_fapn_4xb2-80k_cityscapes-512x1024'
     '.py', 'mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py',
     'train'),
    ('configs/det/faster_rcnn/faster-rcnn_r50_fapn_1x_coco.py',
     'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'inference'),
])
def test_plugin_config_against_stock_base(bm, tmp_path, one_thread, config,
                                          stock, mode):
    """FaPN configs against their stock FPN bases (written mmseg::/mmdet::),
    a train step (forward, loss, backward, SGD step) for the segmentor."""
    config = osp.join(REPO, config)
    if not osp.isfile(config):
        pytest.skip(f'{config} not in this checkout')
    out = tmp_path / 'r.json'
    report = bm.main([
        config, '--compare', stock, '--mode', mode, '--shape', '64', '96',
        '--batch', '2', '--iters', '1', '--warmup', '0', '--threads', '1',
        '--json', str(out)
    ])
    fapn, fpn = report['models']
    assert fpn['config'] == stock
    assert fapn['params'] - fpn['params'] == FAPN_MINUS_FPN
    assert report['ratio']['flops'] > 1
    assert json.loads(out.read_text())['ratio'] == pytest.approx(
        report['ratio'])


def test_checkpoint_is_loaded(bm, tmp_path):
    """--checkpoint: the measured model has the file's weights (random
    weights otherwise, with nothing downloaded)."""
    cfg = bm.load_config(RT_ROWS[0][0])
    first = bm.build_model(cfg, 'mmseg', (64, 96), None, 'cpu')
    with torch.no_grad():
        for p in first.parameters():
            p.normal_()
    path = tmp_path / 'w.pth'
    torch.save(dict(state_dict=first.state_dict()), path)
    loaded = bm.build_model(cfg, 'mmseg', (64, 96), str(path), 'cpu')
    for (name, a), b in zip(first.state_dict().items(),
                            loaded.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        bm.build_model(cfg, 'mmseg', (64, 96), str(tmp_path / 'no.pth'),
                       'cpu')


def test_errors(bm):
    with pytest.raises(FileNotFoundError, match='config file not found: '
                       "'nope.py'"):
        bm.load_config('nope.py')
    with pytest.raises(FileNotFoundError, match="stock config "
                       "'mmseg::nope/none.py' not found"):
        bm.load_config('mmseg::nope/none.py')


def test_error_messages_on_stderr(bm, capsys):
    for argv, message in (
        (['c.py', '--shape', '0', '96'], '--shape must be >= 1, got 0'),
        (['c.py', '--iters', 'x'], "--iters must be an integer, got 'x'"),
        (['c.py', '--mode', 'eval'], "invalid choice: 'eval'"),
    ):
        with pytest.raises(SystemExit):
            bm.parse_args(argv)
        assert message in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bm.parse_args(['c.py', '--device', 'cuda'])
        assert 'torch.cuda.is_available() is False' in capsys.readouterr().err


def test_non_toolbox_scope_rejected(bm):
    from mmengine import Config
    cfg = Config(dict(default_scope='mmpretrain', model=dict(type='X')))
    with pytest.raises(ValueError, match="default_scope='mmpretrain'"):
        bm.config_scope(cfg, 'x.py')
