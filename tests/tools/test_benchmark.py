"""tools/analysis/benchmark.py and mmfapn.analysis.benchmark: the command
line end to end (JSON, ratios, progress), the deformable-conv FLOP handle
against its formula, the real-time FaPN MACs against the supplement's FLOPs
column, stock configs as ``--compare`` for mmseg and mmdet, and its
errors."""
import functools
import json
import os
import os.path as osp
import platform
import subprocess
import sys
from fractions import Fraction

import pytest
import torch
from torch import nn

from mmfapn.analysis import benchmark
from mmfapn.apis import read_config

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
# FaPN neck (R50 channels) minus mmdet's FPN neck
FAPN_MINUS_FPN = 4442504


@pytest.fixture(scope='module')
def bm():
    return benchmark


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
    ablation row, one timed step on a tiny odd shape, JSON written; glibc
    malloc set as mmfapn's runner sets it on CPU."""
    out = tmp_path / 'bench.json'
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('MALLOC_') and k != 'GLIBC_TUNABLES'}
    proc = subprocess.run([
        sys.executable, SCRIPT, RT_MAIN, '--compare', RT_ROWS[0][0],
        '--shape', '35', '51', '--iters', '1', '--warmup', '1', '--threads',
        '1', '--json', str(out), '--cpu-malloc', 'reuse'
    ], capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
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
    if platform.libc_ver()[0] == 'glibc':
        assert report['machine']['allocator']['freed_memory_kept'] is True
        assert 'freed memory kept for reuse' in proc.stdout


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


@functools.lru_cache(maxsize=None)
def _rt_counts(path, shape):
    """``count_flops`` of a real-time config at ``shape`` (cached: the
    conv and the total tests share the small-size counts)."""
    bm = benchmark
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = read_config(path)
        model = bm.build_model(cfg, 'mmseg', shape, None, 'cpu')
        data = bm.make_batch(model, 'mmseg', shape, 1)
        return bm.count_flops(model, model.data_preprocessor(data, False))
    finally:
        torch.set_num_threads(before)


def _small_shapes(shape):
    """Two small shapes with ``shape``'s aspect ratio, sides multiples of
    32 (every level of the stride-32 backbone then scales with the image):
    64 and 128 rows for 1:2 Cityscapes, 64 and 128 squares for 640x640."""
    h, w = shape
    assert w % h == 0, shape
    return (64, 64 * w // h), (128, 128 * w // h)


def _extrapolate(path, full, key=None):
    """The count at ``full`` from the counts at the two small shapes: a
    count is a * area + b (b: the FSM attention convs on 1x1 pooled
    maps), so two sizes give it exactly."""
    small, large = _small_shapes(full)

    def count(shape):
        r = _rt_counts(path, shape)
        return r['flops'] if key is None else r['flops_by_operator'].get(
            key, 0)

    area = [h * w for h, w in (small, large, full)]
    c1, c2 = count(small), count(large)
    got = c2 + Fraction(c2 - c1, area[1] - area[0]) * (area[2] - area[1])
    assert got.denominator == 1, (path, got)
    return int(got)


# README's "conv MACs at 1536x768" column of the ablation table
README_RT_CONV_G = (44.55, 51.04, 51.04, 51.79)


def test_realtime_conv_macs_match_supplement_flops():
    """Supplement Table 1 FLOPs (44.5, 51.0, 51.0, 51.8 G) are the
    convolution MACs at 1536x768 without the deformable sampling op (as
    README's table says, to 0.05 G)."""
    got = []
    for (path, paper_g), readme_g in zip(RT_ROWS, README_RT_CONV_G):
        conv_g = _extrapolate(path, (768, 1536), 'conv') / 1e9
        assert conv_g == pytest.approx(paper_g, abs=0.05), (path, conv_g)
        assert round(conv_g, 2) == readme_g, (path, conv_g)
        got.append(round(conv_g, 3))
    print('conv GMACs at 1536x768:', got)


# README: the ablation rows' totals with the deformable convs counted
# (44.85 / 54.87 / 54.87 / 55.63 G at 1536x768), and the "MACs, here"
# column of the real-time Speed table: config -> (shape, G)
README_RT_TOTAL_G = [(path, (768, 1536), g) for (path, _), g in zip(
    RT_ROWS, (44.85, 54.87, 54.87, 55.63))] + [
        (osp.join(RT, name), shape, g) for name, shape, g in (
            ('fapn-rt_r18_4xb4-40k_cityscapes-512x1024.py', (512, 1024),
             24.73),
            ('fapn-rt_r18_4xb4-40k_cityscapes-768x1536.py', (768, 1536),
             55.63),
            ('fapn-rt_r34_4xb4-40k_cityscapes-1024x2048.py', (1024, 2048),
             176.32),
            ('fapn-rt_r18_4xb4-20k_coco-stuff10k-640x640.py', (640, 640),
             19.88),
            ('fapn-rt_r34_4xb4-20k_coco-stuff10k-640x640.py', (640, 640),
             35.00),
        )
    ]


@pytest.mark.parametrize(
    'path,shape,readme_g', README_RT_TOTAL_G,
    ids=[f'{osp.basename(p)[:-3]}@{s[0]}x{s[1]}'
         for p, s, _ in README_RT_TOTAL_G])
def test_realtime_total_macs_match_readme(path, shape, readme_g):
    """The totals README prints (deformable convs counted as a dense conv
    plus 5 MACs per sampled value, and every other counted op) at the
    printed input size; the deformable part follows that formula for the
    two FAMs (stride 16 and 8, 128 channels, 3x3)."""
    total = _extrapolate(path, shape)
    assert round(total / 1e9, 2) == readme_g, (path, total)
    per_position = 128 * 128 * 9 + 5 * 128 * 9

    def positions(h, w):
        return (h // 16) * (w // 16) + (h // 8) * (w // 8)

    dcn = _extrapolate(path, shape, 'PythonOp._CountedDeformConv')
    if 'abl-fpn_' in path:
        assert dcn == 0
        return
    assert dcn == positions(*shape) * per_position
    for s in _small_shapes(shape):  # and at the sizes actually counted
        ops = _rt_counts(path, s)['flops_by_operator']
        assert ops['PythonOp._CountedDeformConv'] == \
            positions(*s) * per_position


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
    # a deleted or renamed config must fail here, not skip
    assert osp.isfile(config), f'{config} is missing'
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
    cfg = read_config(RT_ROWS[0][0])
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
        read_config('nope.py')
    with pytest.raises(FileNotFoundError, match="stock config "
                       "'mmseg::nope/none.py' not found"):
        read_config('mmseg::nope/none.py')


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


def test_interleaved_compare(bm, tmp_path, one_thread):
    """``--interleave``: both models timed in rounds, the per-round ratio
    reported, peak memory as the process's for both."""
    out = tmp_path / 'bench.json'
    report = bm.main([
        RT_MAIN, '--compare', RT_ROWS[0][0], '--shape', '35', '51',
        '--iters', '2', '--warmup', '1', '--no-flops', '--interleave',
        '--json', str(out)
    ])
    assert json.loads(out.read_text())['interleave'] is True
    fapn, fpn = report['models']
    for m in (fapn, fpn):
        assert len(m['latency_s']['all']) == 2
        assert m['peak_memory_mib'] is None
        assert m['process_peak_memory_mib'] > 0
    assert fapn['params'] == 12635203 and fpn['params'] == 11366675
    per_round = sorted(a / b for a, b in zip(fapn['latency_s']['all'],
                                             fpn['latency_s']['all']))
    assert report['ratio']['latency_per_round'] == pytest.approx(
        sum(per_round) / 2)
    assert report['ratio']['peak_memory'] is None


def test_interleave_needs_compare(bm, capsys):
    with pytest.raises(SystemExit):
        bm.parse_args([RT_MAIN, '--interleave'])
    assert '--interleave needs --compare' in capsys.readouterr().err
