"""The deformable-conv benchmark (``mmfapn.analysis.bench_dcn``, the
library behind tools/analysis/bench_dcn.py) at a tiny size: the figures it
writes (one case per input, level, mode and implementation; the im2col
size; timings and the load average) and its argument checks; and the
command line itself once."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from mmfapn.analysis import bench_dcn as bench_module

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


@pytest.fixture(scope='module')
def bench():
    return bench_module


def test_writes_one_case_per_shape_mode_and_impl(bench, tmp_path, capsys):
    out = tmp_path / 'b.json'
    assert bench.main([
        '--inputs', '64x96', '--levels', 'P2', 'P3', '--channels', '16',
        '--repeat', '2', '--json', str(out)
    ]) == 0
    result = json.loads(out.read_text())
    cases = result['cases']
    impls = ('torch', 'mmcv', 'dense') if result['machine']['mmcv_ops'] \
        else ('torch', 'dense')  # mmcv is skipped without its ops
    assert len(cases) == 2 * 2 * len(impls)  # levels x modes x impls
    assert {(c['level'], c['mode'], c['impl'])
            for c in cases} == {(lv, m, i) for lv in ('P2', 'P3')
                                for m in ('fwd', 'fwdbwd') for i in impls}
    p2 = [c for c in cases if c['level'] == 'P2'][0]
    assert p2['map'] == [16, 24]
    # one dense im2col: C * 9 * H_out * W_out float32 values
    assert p2['im2col_mib'] == pytest.approx(16 * 9 * 16 * 24 * 4 / 2**20)
    assert all(c['median_s'] > 0 and 1 <= len(c['times_s']) <= 2
               for c in cases)
    assert len(result['load_before']) == 3
    printed = capsys.readouterr().out
    # one ratio line per level and mode
    assert printed.count('torch/dense') == 4


@pytest.mark.parametrize('argv, message', [
    (['--inputs', '64by96'], 'takes HxW'),
    (['--channels', '12'], 'not divisible by --deform-groups 8'),
    (['--repeat', '0'], '--repeat must be >= 1'),
])
def test_bad_arguments(bench, argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err


def test_command_line_writes_json(tmp_path):
    out = tmp_path / 'cli.json'
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/analysis/bench_dcn.py'),
         '--inputs', '32x32', '--levels', 'P3', '--channels', '8',
         '--impls', 'torch', 'dense', '--modes', 'fwd', '--repeat', '1',
         '--json', str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'torch/dense' in proc.stdout
    result = json.loads(out.read_text())
    assert {c['impl'] for c in result['cases']} == {'torch', 'dense'}
    assert result['machine']['cores'] >= 1


def test_baseline_kernel_is_timed_in_the_same_rounds(bench, tmp_path,
                                                     capsys, monkeypatch):
    """``--baseline-kernel`` times another mdcn_torch.py (here a copy of
    this one, made to count its calls) as impl 'baseline', and restores
    the PyTorch path's own kernel after each call."""
    from mmfapn.ops import mdcn_torch
    src = open(mdcn_torch.__file__).read()
    copy = tmp_path / 'old_mdcn_torch.py'
    copy.write_text(src + '\nCALLS = []\n_real_forward = _forward\n\n\n'
                    'def _forward(*args, **kwargs):\n'
                    '    CALLS.append(1)\n'
                    '    return _real_forward(*args, **kwargs)\n')
    loaded = []
    real_load = bench.load_kernel

    def load(path):
        loaded.append(real_load(path))
        return loaded[-1]

    monkeypatch.setattr(bench, 'load_kernel', load)
    own = mdcn_torch._forward, mdcn_torch._backward
    out = tmp_path / 'b.json'
    assert bench.main([
        '--inputs', '32x32', '--levels', 'P3', '--channels', '16',
        '--impls', 'torch', 'dense', '--repeat', '2',
        '--baseline-kernel', str(copy), '--json', str(out)
    ]) == 0
    assert (mdcn_torch._forward, mdcn_torch._backward) == own
    # warm-up + 2 rounds, forward and forward+backward
    assert len(loaded[0].CALLS) == 6
    result = json.loads(out.read_text())
    assert {c['impl'] for c in result['cases']} == {'torch', 'dense',
                                                    'baseline'}
    assert {r['of'] for r in result['ratios']} == {
        'torch/dense', 'torch/baseline', 'baseline/dense'}
    assert capsys.readouterr().out.count('torch/baseline') == 2


def test_missing_baseline_kernel_is_one_error(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(['--baseline-kernel', '/no/such/mdcn_torch.py'])
    assert "no such file: '/no/such/mdcn_torch.py'" in \
        capsys.readouterr().err
