"""tools/gpu_check.py (``make gpu-check``): the CPU dry run end to end
(every step wired, the report's schema), and its parts: the report
validator, the carried-wheel splitting, the wheelhouse list and check, the
loss and pytest-result readers; setup_env.sh's wheelhouse error; the CUDA
additions of bench_dcn.py and mmfapn.analysis.benchmark that run on a CPU."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'gpu_check.py')


def _load(name, rel):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def gc():
    return _load('mmfapn_gpu_check', 'tools/gpu_check.py')


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('gpu_check')
    proc = subprocess.run(
        [sys.executable, SCRIPT, '--dry-run', '--work-dir', str(work),
         '--python', sys.executable],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    return proc, work


@pytest.mark.slow  # about 45 s of CPU: a dozen tools imported
def test_dry_run_wires_every_step(gc, dry_run):
    proc, work = dry_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads((work / 'report.json').read_text())
    gc.validate_report(report)
    assert report['mode'] == 'dry-run'
    steps = {s['name']: s for s in report['steps']}
    assert list(steps) == gc.STEP_NAMES
    assert {s['status'] for s in steps.values()} == {'dry-run'}, {
        n: s.get('reason') for n, s in steps.items()}
    # each step's cost is printed as it ends
    for name in gc.STEP_NAMES:
        assert re.search(rf'step {name}: dry-run in \d+\.\d s', proc.stdout)
    # setup: the pinned list parses; the arch list for an H100/H200
    setup = steps['setup']['results']
    assert 'mmengine==0.10.7' in setup['requirements']
    assert setup['torch_cuda_arch_list_for_9_0'] == '9.0'
    # pytest collects the new CUDA tests (skipped without CUDA when run)
    tests = steps['cuda_tests']['results']
    assert 'tests/ops/test_mdcn_cuda.py' in tests['files']
    assert tests['collected'] >= 31  # test_mdcn_cuda.py alone has 31
    # every benchmark command line parses
    for name in ('bench_dcn', 'realtime', 'pointrend', 'modules'):
        jobs = steps[name]['results']
        assert jobs and all(j['status'] == 'ok' for j in jobs.values()), (
            name, jobs)
    assert len(steps['realtime']['results']) == 3 * 4 + 1
    assert set(steps['pointrend']['results']) == {
        'pointrend_inference', 'pointrend_train'}
    # the configs load, the training command is complete
    train = steps['train_amp']['results']
    assert len(train['configs_loaded']) == 6
    assert '--amp' in train['train'] and \
        f'train_cfg.max_iters={gc.TRAIN_ITERS}' in train['train']
    md = (work / 'report.md').read_text()
    assert '| cuda_tests | dry-run |' in md and 'Mode **dry-run**' in md


@pytest.mark.slow  # shares the dry run
def test_validate_report_names_the_bad_field(gc, dry_run):
    _, work = dry_run
    good = json.loads((work / 'report.json').read_text())

    def bad(change, message):
        report = json.loads(json.dumps(good))
        change(report)
        with pytest.raises(ValueError, match=message):
            gc.validate_report(report)

    bad(lambda r: r.update(schema='x'), "schema must be 'mmfapn-gpu")
    bad(lambda r: r.update(mode='fast'), 'mode must be one of')
    bad(lambda r: r['steps'][1].update(status='great'),
        r'steps\[1\]\.status must be one of')
    bad(lambda r: r['steps'].pop(), r"steps missing: \['modules'\]")
    bad(lambda r: r['steps'].reverse(), 'out of order')
    bad(lambda r: r['mmcv'].pop('cuda_ops'), 'mmcv.cuda_ops is missing')

    def failed_without_reason(r):
        r['steps'][2].update(status='failed')
        r['steps'][2].pop('reason', None)

    bad(failed_without_reason, r'steps\[2\]\.reason is missing')


def test_cuda_arch_list(gc):
    assert gc.cuda_arch_list((9, 0)) == '9.0'
    assert gc.cuda_arch_list([8, 6]) == '8.6'


def test_split_file_round_trip(gc, tmp_path):
    data = os.urandom(2500)
    src = tmp_path / 'mmcv-2.1.0-cp312-cp312-linux_x86_64.whl'
    src.write_bytes(data)
    parts = gc.split_file(str(src), str(tmp_path / 'out'), part_bytes=1000)
    assert [osp.basename(p) for p in parts] == [
        f'{src.name}.part-{s}' for s in ('aa', 'ab', 'ac')]
    # joined as setup_env.sh joins them
    joined = b''.join(open(p, 'rb').read() for p in sorted(parts))
    assert joined == data
    whole = gc.split_file(str(src), str(tmp_path / 'whole'))
    assert [osp.basename(p) for p in whole] == [src.name]


def test_wheelhouse_list_agrees_with_requirements(gc):
    pins = gc.read_requirements(osp.join(REPO, gc.SCRIPTS['requirements']))
    pinned_here = {}
    for line in open(osp.join(REPO, 'requirements.txt')):
        line = line.split('#')[0].strip()
        if '==' in line:
            name, version = line.split('==')
            pinned_here[name] = version
    for pin in pins:
        name, version = pin.split('==')
        if name in pinned_here:
            assert pinned_here[name] == version, pin
    assert {'mmengine', 'mmdet', 'mmsegmentation'} <= {
        p.split('==')[0] for p in pins}


def test_check_wheelhouse_lists_what_is_missing(gc, tmp_path):
    req = tmp_path / 'req.txt'
    req.write_text('# a comment\nmmengine==0.10.7\nshapely==2.2.0\n\n'
                   'prettytable==3.18.0  # why\n')
    for name in ('mmengine-0.10.7-py3-none-any.whl',
                 'shapely-2.2.0-cp312-cp312-manylinux_2_28_x86_64.whl',
                 'prettytable-3.17.0-py3-none-any.whl'):
        (tmp_path / name).write_bytes(b'')
    missing = gc.check_wheelhouse(str(tmp_path), str(req))
    assert missing == ['prettytable==3.18.0',
                       'mmcv==2.1.0 (the sdist mmcv-2.1.0.tar.gz)']
    (tmp_path / 'mmcv-2.1.0.tar.gz').write_bytes(b'')
    (tmp_path / 'prettytable-3.18.0.tar.gz').write_bytes(b'')
    assert gc.check_wheelhouse(str(tmp_path), str(req)) == []
    req.write_text('mmengine>=0.10\n')
    with pytest.raises(ValueError, match=r"req.txt:1: expected NAME==VERSION,"
                       r" got 'mmengine>=0.10'"):
        gc.read_requirements(str(req))


def test_training_losses(gc, tmp_path):
    run = tmp_path / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    with open(run / 'scalars.json', 'w') as f:
        for it in range(1, 51):
            f.write(json.dumps(dict(iter=it, loss=3.0 - it / 50,
                                    time=0.1)) + '\n')
        f.write(json.dumps(dict(iter=50, mIoU=1.0)) + '\n')
    out = gc.training_losses(str(tmp_path))
    assert out['iters'] == 50 and out['finite']
    assert out['first10'] == pytest.approx(3.0 - 5.5 / 50)
    assert out['last10'] == pytest.approx(3.0 - 45.5 / 50)
    assert out['iter_s_median'] == pytest.approx(0.1)


def test_parse_junit(gc, tmp_path):
    xml = tmp_path / 'r.xml'
    xml.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="a" name="t1"/>'
        '<testcase classname="a" name="t2"><failure message="x"/></testcase>'
        '<testcase classname="a" name="t3"><skipped message="needs CUDA"/>'
        '</testcase><testcase classname="b" name="t4"><error/></testcase>'
        '</testsuite></testsuites>')
    out = gc.parse_junit(str(xml))
    assert (out['passed'], out['failed'], out['skipped'],
            out['errors']) == (1, 1, 1, 1)
    assert out['failed_tests'] == ['a::t2', 'b::t4']
    assert out['skipped_reasons'] == {'a::t3': 'needs CUDA'}


def test_setup_env_rejects_a_missing_wheelhouse(tmp_path):
    venv = tmp_path / 'venv'
    env = dict(os.environ, VENV=str(venv),
               MMFAPN_WHEELHOUSE=str(tmp_path / 'none'))
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'setup_env.sh')],
                          env=env, capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f'[setup] ERROR: MMFAPN_WHEELHOUSE={tmp_path / "none"} is not a '
        'directory')
    assert not venv.exists()  # fails before creating anything


def test_bench_dcn_torchvision_impl_on_cpu(tmp_path, capsys):
    """The impl that gpu-check's fallback mode uses; skipped with a message
    where torchvision is missing."""
    from mmfapn.analysis import bench_dcn as bench
    out = tmp_path / 'b.json'
    assert bench.main(['--inputs', '32x64', '--levels', 'P2', '--channels',
                       '16', '--repeat', '1', '--modes', 'fwd', '--impls',
                       'torch', 'torchvision', '--json', str(out)]) == 0
    impls = {c['impl'] for c in json.loads(out.read_text())['cases']}
    try:
        import torchvision.ops  # noqa: F401
    except ImportError:
        assert impls == {'torch'}
        assert "skipping impl 'torchvision'" in capsys.readouterr().out
    else:
        assert impls == {'torch', 'torchvision'}


def test_benchmark_gpu_options_parse_and_are_recorded():
    from mmfapn.analysis import benchmark as bm
    args = bm.parse_args(['c.py', '--amp', 'float16', '--channels-last',
                          '--cudnn-benchmark'])
    assert (args.amp, args.channels_last, args.cudnn_benchmark) == (
        'float16', True, True)
    assert bm.parse_args(['c.py']).amp is None
    with pytest.raises(SystemExit):
        bm.parse_args(['c.py', '--amp', 'float8'])


def test_benchmark_channels_last_runs_on_cpu(tmp_path):
    """--channels-last (and the cuDNN switch, a no-op on the CPU) at a tiny
    size: the step runs and the JSON records the options."""
    import torch
    from mmfapn.analysis import benchmark as bm
    out = tmp_path / 'r.json'
    saved_flag = torch.backends.cudnn.benchmark
    try:
        report = bm.main([
            osp.join(REPO, 'configs/seg/fapn_realtime/'
                     'fapn-rt_r18_4xb4-40k_cityscapes-512x1024.py'),
            '--shape', '64', '128', '--iters', '1', '--warmup', '0',
            '--threads', '1', '--no-flops', '--channels-last',
            '--cudnn-benchmark', '--json', str(out)])
    finally:
        torch.backends.cudnn.benchmark = saved_flag
    saved = json.loads(out.read_text())
    assert saved['channels_last'] and saved['cudnn_benchmark']
    assert saved['amp'] is None
    model = report['models'][0]
    assert model['channels_last'] and model['latency_s']['median'] > 0
