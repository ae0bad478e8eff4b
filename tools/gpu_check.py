"""``make gpu-check``: verify mmfapn on a machine with a CUDA GPU, in about
10 minutes of wall time including the set-up, and write
``work_dirs/gpu_check/report.json`` and ``report.md``.

    python3 tools/gpu_check.py [--wheelhouse DIR] [--budget 600]
        [--mmcv-build-timeout 330] [--steps STEP ...] [--skip STEP ...]
        [--no-setup] [--python PY] [--export-wheel DIR]
        [--work-dir work_dirs/gpu_check] [--dry-run]

Steps, in order (each one's wall time is printed and recorded):

``setup``
    ``tools/setup_env.sh`` with the base python's CUDA torch reused, mmcv
    2.1.0's ops built for this GPU's architecture only
    (``TORCH_CUDA_ARCH_LIST`` from ``torch.cuda.get_device_capability``,
    ``MAX_JOBS`` = cores), offline from ``--wheelhouse`` /
    ``MMFAPN_WHEELHOUSE`` when given, the built wheel cached (and, with
    ``--export-wheel``, copied out in parts small enough to carry).  If the
    build fails or takes longer than ``--mmcv-build-timeout`` the check
    goes on in **fallback** mode: mmcv without compiled ops, the PyTorch
    path checked against torchvision's CUDA ``deform_conv2d``, the FaPN
    neck timed on its own; the steps that need mmdet/mmseg models are
    skipped with that reason.
``cuda_tests``
    pytest, ``-k cuda``, on every test file that mentions CUDA: among them
    ``tests/ops/test_mdcn_cuda.py`` (the PyTorch DCN path against mmcv's
    CUDA op and torchvision's, output and every gradient) and the autocast
    tests (``tests/models/test_autocast.py``) where they exist.
``bench_dcn``
    ``tools/analysis/bench_dcn.py --device cuda``: the deformable conv at
    FaPN's layer shapes, PyTorch path, mmcv (torchvision in fallback) and a
    dense conv, forward and forward+backward.
``train_amp``
    ``tools/train.py --amp`` on a FaPN mmseg config
    (``configs/seg/demo/sem-fpn_r18_fapn_toycity-demo.py``) for 50
    iterations on generated Cityscapes-format data: every loss finite, the
    last 10 lower on average than the first 10.
``realtime``
    ``tools/analysis/benchmark.py`` on the real-time models at the paper's
    protocol (R18 512x1024 and 768x1536, R34 1024x2048; batch 1;
    inference), in float32, float16 (autocast) and channels_last, and R18
    768x1536 float32 with the PyTorch DCN path (``MMFAPN_DCN_IMPL=torch``).
``pointrend``
    PointRend R50 FaPN against mmseg's PointRend R50 FPN, inference (batch
    1) and train step (batch 2) at 512x1024: the FaPN/FPN ratios.
``ddp``
    two processes with NCCL (``tools/dist_train.sh``, 2 iterations) when
    two GPUs exist; skipped with the reason otherwise.
``modules`` (fallback only)
    the FaPN neck alone (R18 and R50 channels), forward and
    forward+backward, float32 and float16 autocast.

Every step runs as a subprocess with its own time limit, the smaller of
its cap and what is left of ``--budget``; a step that would not fit is
skipped with that reason, a failed step does not stop the later ones.  The
benchmark jobs run in one worker process (``--run-jobs``) so that the
toolboxes are imported once.

``--dry-run`` (CPU, seconds; run by ``make test``) runs no GPU code: it
checks that every step is wired (the scripts exist and their ``--help``
works, every benchmark command line parses, the configs load, pytest
collects the CUDA tests, ``setup_env.sh`` parses, the wheelhouse list
parses) and writes a report of the same schema with every step marked
``dry-run``.

Unlike the other tools this script must run before mmfapn is installed:
with a bare ``python3`` (standard library only) on a fresh GPU machine,
whose ``setup`` step creates the environment.  So it imports nothing of
mmfapn at the top; the processes it starts find this checkout through
``PYTHONPATH`` (:meth:`Check.env`), and the two parts of a dry run that
run in this process (the benchmark command lines, the configs: the
toolboxes imported once) put the checkout on ``sys.path`` first
(:func:`use_checkout`), the one place where a tool does so.
"""
import argparse
import datetime
import glob
import importlib.util
import json
import math
import os
import os.path as osp
import platform
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def use_checkout() -> None:
    """Make this checkout's mmfapn importable in this process, which may be
    a python without mmfapn installed (see the module docstring)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)


SCHEMA = 'mmfapn-gpu-check/1'
STATUSES = ('ok', 'failed', 'skipped', 'timeout', 'dry-run')
MODES = ('full', 'fallback', 'dry-run')
MMCV_VERSION = '2.1.0'
PART_BYTES = 15 * 2**20  # carried files: at most 16 MiB each

RT_DIR = 'configs/seg/fapn_realtime'
# the paper's real-time protocol (batch 1, float32) and its FPS (Titan RTX)
REALTIME = [
    ('r18_512x1024', f'{RT_DIR}/fapn-rt_r18_4xb4-40k_cityscapes-512x1024.py',
     (512, 1024), 142.0),
    ('r18_768x1536', f'{RT_DIR}/fapn-rt_r18_4xb4-40k_cityscapes-768x1536.py',
     (768, 1536), 78.1),
    ('r34_1024x2048',
     f'{RT_DIR}/fapn-rt_r34_4xb4-40k_cityscapes-1024x2048.py', (1024, 2048),
     30.2),
]
VARIANTS = [  # name, benchmark.py options
    ('fp32', []),
    ('fp16', ['--amp', 'float16']),
    ('fp32_channels_last', ['--channels-last']),
    ('fp16_channels_last', ['--amp', 'float16', '--channels-last']),
]
POINTREND_FAPN = ('configs/seg/point_rend/'
                  'pointrend_r50_fapn_4xb2-80k_cityscapes-512x1024.py')
POINTREND_FPN = ('mmseg::point_rend/'
                 'pointrend_r50_4xb2-80k_cityscapes-512x1024.py')
TRAIN_CONFIG = 'configs/seg/demo/sem-fpn_r18_fapn_toycity-demo.py'
TRAIN_ITERS = 50
SCRIPTS = {
    'setup_env': 'tools/setup_env.sh',
    'train': 'tools/train.py',
    'dist_train': 'tools/dist_train.sh',
    'bench_dcn': 'tools/analysis/bench_dcn.py',
    'benchmark': 'tools/analysis/benchmark.py',
    'make_toy': 'tools/data/make_cityscapes_toy.py',
    'requirements': 'tools/gpu_check_requirements.txt',
}
CUDA_TEST = 'tests/ops/test_mdcn_cuda.py'
AUTOCAST_TEST = 'tests/models/test_autocast.py'


# --------------------------------------------------------------------------
# steps: what each runs, its cap and an estimate on one H200 with 16 cores
# --------------------------------------------------------------------------
class Step:

    def __init__(self, name: str, cap_s: float, est_s: float, what: str,
                 needs_models: bool = False, fallback_only: bool = False):
        self.name, self.cap_s, self.est_s, self.what = name, cap_s, est_s, what
        self.needs_models = needs_models  # mmdet/mmseg, i.e. mmcv's ops
        self.fallback_only = fallback_only


STEPS = [
    Step('setup', 420, 300, 'venv, wheels, mmcv CUDA ops for this GPU '
         '(about 240-300 s building, 20 s with a cached or carried wheel)'),
    Step('cuda_tests', 150, 45, 'pytest -k cuda (DCN vs mmcv/torchvision, '
         'autocast)'),
    Step('bench_dcn', 90, 25, 'DCN op timing on CUDA'),
    Step('train_amp', 150, 45, f'{TRAIN_ITERS} AMP iterations of a FaPN '
         'mmseg config', needs_models=True),
    Step('realtime', 180, 70, 'real-time FaPN FPS (3 models x 4 variants + '
         'DCN path)', needs_models=True),
    Step('pointrend', 150, 45, 'PointRend R50 FaPN/FPN inference and train '
         'step', needs_models=True),
    Step('ddp', 150, 60, '2-process NCCL training step', needs_models=True),
    Step('modules', 90, 20, 'FaPN neck alone on CUDA', fallback_only=True),
]
STEP_NAMES = [s.name for s in STEPS]


def say(msg: str) -> None:
    print(f'[gpu-check] {msg}', flush=True)


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')


def cuda_arch_list(capability) -> str:
    """``TORCH_CUDA_ARCH_LIST`` for one device capability, e.g. (9, 0)."""
    major, minor = capability
    return f'{int(major)}.{int(minor)}'


def split_file(path: str, out_dir: str, part_bytes: int = PART_BYTES
               ) -> List[str]:
    """Copy ``path`` into ``out_dir``, whole if it fits in ``part_bytes``,
    else as ``NAME.part-aa``, ``NAME.part-ab``... (what ``cat`` joins, as
    ``tools/setup_env.sh`` does with a carried wheel)."""
    os.makedirs(out_dir, exist_ok=True)
    name = osp.basename(path)
    if osp.getsize(path) <= part_bytes:
        dst = osp.join(out_dir, name)
        shutil.copyfile(path, dst)
        return [dst]
    parts = []
    with open(path, 'rb') as f:
        for i in range(10**6):
            chunk = f.read(part_bytes)
            if not chunk:
                break
            suffix = chr(ord('a') + i // 26) + chr(ord('a') + i % 26)
            dst = osp.join(out_dir, f'{name}.part-{suffix}')
            with open(dst, 'wb') as g:
                g.write(chunk)
            parts.append(dst)
    return parts


def read_requirements(path: str) -> List[str]:
    """The ``NAME==VERSION`` lines of a requirements file (comments and
    blank lines dropped); anything else is an error naming the line."""
    pins = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][^\s]*',
                                line):
                raise ValueError(f'{path}:{n}: expected NAME==VERSION, got '
                                 f'{line!r}')
            pins.append(line)
    return pins


def _normalise(name: str) -> str:
    return re.sub(r'[-_.]+', '_', name).lower()


def check_wheelhouse(path: str, requirements: str) -> List[str]:
    """What the wheelhouse lacks: one line per pinned package without a
    wheel or sdist of that version, and the mmcv sdist."""
    have = set()
    for f in os.listdir(path):
        if f.endswith('.whl'):
            parts = f[:-4].split('-')
            if len(parts) >= 2:
                have.add((_normalise(parts[0]), parts[1]))
        elif f.endswith(('.tar.gz', '.zip')):
            stem = f[:-7] if f.endswith('.tar.gz') else f[:-4]
            if '-' in stem:
                dist, version = stem.rsplit('-', 1)
                have.add((_normalise(dist), version))
    missing = []
    for pin in read_requirements(requirements):
        name, version = pin.split('==')
        if (_normalise(name), version) not in have:
            missing.append(pin)
    if not osp.isfile(osp.join(path, f'mmcv-{MMCV_VERSION}.tar.gz')):
        missing.append(f'mmcv=={MMCV_VERSION} (the sdist '
                       f'mmcv-{MMCV_VERSION}.tar.gz)')
    return missing


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------
def validate_report(report: Dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first field of ``report`` that does
    not follow the schema (``SCHEMA``)."""

    def need(obj, key, kinds, where):
        if key not in obj:
            raise ValueError(f'report: {where}{key} is missing')
        if not isinstance(obj[key], kinds):
            raise ValueError(f'report: {where}{key} must be '
                             f'{kinds}, got {type(obj[key]).__name__}')
        return obj[key]

    if need(report, 'schema', str, '') != SCHEMA:
        raise ValueError(f'report: schema must be {SCHEMA!r}, got '
                         f'{report["schema"]!r}')
    if need(report, 'mode', str, '') not in MODES:
        raise ValueError(f'report: mode must be one of {MODES}, got '
                         f'{report["mode"]!r}')
    for key in ('started', 'finished'):
        need(report, key, str, '')
    for key in ('wall_s', 'budget_s'):
        need(report, key, (int, float), '')
    machine = need(report, 'machine', dict, '')
    for key in ('python', 'cpu_count', 'platform'):
        need(machine, key, (str, int), 'machine.')
    mmcv = need(report, 'mmcv', dict, '')
    need(mmcv, 'cuda_ops', bool, 'mmcv.')
    need(mmcv, 'source', str, 'mmcv.')
    steps = need(report, 'steps', list, '')
    names = []
    for i, step in enumerate(steps):
        where = f'steps[{i}].'
        if not isinstance(step, dict):
            raise ValueError(f'report: steps[{i}] must be a dict')
        names.append(need(step, 'name', str, where))
        if need(step, 'status', str, where) not in STATUSES:
            raise ValueError(f'report: {where}status must be one of '
                             f'{STATUSES}, got {step["status"]!r}')
        need(step, 'seconds', (int, float), where)
        need(step, 'estimate_s', (int, float), where)
        need(step, 'commands', list, where)
        need(step, 'results', dict, where)
        if step['status'] in ('skipped', 'failed', 'timeout'):
            need(step, 'reason', str, where)
    if names != [n for n in STEP_NAMES if n in names]:
        raise ValueError(f'report: steps out of order or unknown: {names}')
    if set(names) != set(STEP_NAMES):
        raise ValueError('report: steps missing: '
                         f'{sorted(set(STEP_NAMES) - set(names))}')
    need(report, 'figures', dict, '')


def _fmt(v, digits=1, unit=''):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return 'n/a'
    return f'{v:.{digits}f}{unit}'


def write_markdown(report: Dict[str, Any], path: str) -> None:
    m = report['machine']
    gpu = m.get('gpu') or 'no GPU'
    lines = [
        '# mmfapn GPU check', '',
        f'Mode **{report["mode"]}**, {report["started"]} to '
        f'{report["finished"]}, wall {report["wall_s"]:.0f} s of a '
        f'{report["budget_s"]:.0f} s budget.', '',
        f'Machine: {gpu} (capability {m.get("capability", "n/a")}), '
        f'{m["cpu_count"]} CPU cores, torch {m.get("torch", "n/a")} (CUDA '
        f'{m.get("cuda", "n/a")}), python {m["python"]}, driver '
        f'{m.get("driver", "n/a")}.', '',
        f'mmcv {MMCV_VERSION}: {report["mmcv"]["source"]}, CUDA ops '
        f'{"yes" if report["mmcv"]["cuda_ops"] else "no"}'
        + (f' ({report["mmcv"]["error"]})' if report['mmcv'].get('error')
           else '') + '.', '',
        '| step | status | seconds | estimate (s) | note |',
        '| --- | --- | ---: | ---: | --- |'
    ]
    for s in report['steps']:
        note = s.get('reason') or s.get('summary') or ''
        lines.append(f'| {s["name"]} | {s["status"]} | {s["seconds"]:.1f} | '
                     f'{s["estimate_s"]:.0f} | {note} |')
    fig = report['figures']
    if fig.get('cuda_tests'):
        t = fig['cuda_tests']
        lines += ['', f'CUDA tests: {t["passed"]} passed, {t["failed"]} '
                  f'failed, {t["errors"]} errors, {t["skipped"]} skipped.']
        reasons: Dict[str, int] = {}
        for why in t.get('skipped_reasons', {}).values():
            reasons[why] = reasons.get(why, 0) + 1
        for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f'- {n} skipped: {why}')
        for name in t.get('failed_tests', []):
            lines.append(f'- FAILED {name}')
    if fig.get('bench_dcn'):
        lines += ['', '## Deformable conv op (median ms)', '',
                  '| input | level | mode | ' + ' | '.join(
                      fig['bench_dcn']['impls']) + ' |',
                  '| --- | --- | --- |' + ' ---: |' * len(
                      fig['bench_dcn']['impls'])]
        for row in fig['bench_dcn']['rows']:
            lines.append(f'| {row["input"]} | {row["level"]} | '
                         f'{row["mode"]} | ' + ' | '.join(
                             _fmt(row.get(i), 2) for i in
                             fig['bench_dcn']['impls']) + ' |')
    if fig.get('realtime'):
        lines += ['', '## Real-time FaPN, batch 1, inference (FPS)', '',
                  '| model | paper FPS (Titan RTX, fp32) | ' + ' | '.join(
                      fig['realtime']['variants']) + ' |',
                  '| --- | ---: |' + ' ---: |' * len(
                      fig['realtime']['variants'])]
        for row in fig['realtime']['rows']:
            lines.append(f'| {row["model"]} | {row["paper_fps"]} | ' +
                         ' | '.join(
                             _fmt(row.get(v), 1) for v in
                             fig['realtime']['variants']) + ' |')
    if fig.get('pointrend'):
        p = fig['pointrend']
        lines += ['', '## PointRend R50 at 512x1024: FaPN / FPN', '',
                  f'- inference latency ratio {_fmt(p.get("inference"), 3)}'
                  f' (FaPN {_fmt(p.get("inference_fapn_ms"), 1, " ms")}, '
                  f'FPN {_fmt(p.get("inference_fpn_ms"), 1, " ms")})',
                  f'- train step ratio {_fmt(p.get("train"), 3)} (FaPN '
                  f'{_fmt(p.get("train_fapn_ms"), 1, " ms")}, FPN '
                  f'{_fmt(p.get("train_fpn_ms"), 1, " ms")})']
    if fig.get('train_amp'):
        t = fig['train_amp']
        lines += ['', f'## AMP training ({t["iters"]} iterations)', '',
                  f'- loss: first 10 mean {_fmt(t.get("first10"), 4)}, last '
                  f'10 mean {_fmt(t.get("last10"), 4)}, all finite: '
                  f'{t.get("finite")}',
                  '- median iteration time '
                  f'{_fmt(t.get("iter_s_median"), 3, " s")}']
    if fig.get('modules'):
        lines += ['', '## FaPN neck alone (median ms)', '']
        for row in fig['modules']['rows']:
            lines.append(f'- {row["name"]}: {_fmt(row["median_ms"], 2)}')
    lines += ['', 'Figures from one run on the machine named above; the '
              'paper\'s FPS are the paper\'s (Titan RTX), not measured '
              'here.', '']
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


# --------------------------------------------------------------------------
# the orchestrator
# --------------------------------------------------------------------------
class Check:

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = osp.abspath(args.work_dir)
        self.logs = osp.join(self.work, 'logs')
        os.makedirs(self.logs, exist_ok=True)
        self.t0 = time.monotonic()
        self.dry = args.dry_run
        self.python = args.python or sys.executable
        venv_py = osp.join(ROOT, '.venv', 'bin', 'python')
        if self.dry and not args.python and osp.exists(venv_py):
            self.python = venv_py  # make test's environment
        self.venv = osp.join(ROOT, '.venv')
        self.mode = 'dry-run' if self.dry else 'full'
        self.mmcv: Dict[str, Any] = dict(
            source='not set up', cuda_ops=False, error=None)
        self.machine: Dict[str, Any] = {}
        self.steps: List[Dict[str, Any]] = []
        self.figures: Dict[str, Any] = {}
        self.gpus = 0

    # ---- time ----------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.args.budget - self.elapsed()

    # ---- running -------------------------------------------------------
    def env(self, **extra) -> Dict[str, str]:
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            [ROOT] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
        env['PYTHONUNBUFFERED'] = '1'
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run(self, cmd: List[str], log: str, timeout: float,
            env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """Run ``cmd`` (output to ``log`` and, shortened, to the
        terminal); returncode None if it ran past ``timeout``."""
        path = osp.join(self.logs, log)
        say(f'$ {" ".join(cmd)}   (limit {timeout:.0f} s, log {path})')
        start = time.monotonic()
        with open(path, 'a') as f:
            f.write(f'$ {" ".join(cmd)}\n')
            f.flush()
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                    cwd=ROOT, env=env or self.env(),
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                rc = None
        seconds = time.monotonic() - start
        with open(path, errors='replace') as f:
            tail = f.read()[-2000:]
        return dict(cmd=cmd, returncode=rc, seconds=seconds, tail=tail,
                    log=path)

    def step(self, spec: Step, fn) -> None:
        """Run one step through ``fn(timeout) -> (status, reason, results,
        commands)`` within the budget, and record it."""
        rec = dict(name=spec.name, status='skipped', seconds=0.0,
                   estimate_s=float(spec.est_s), commands=[], results={},
                   what=spec.what)
        chosen = ((self.args.steps is None or spec.name in self.args.steps)
                  and spec.name not in (self.args.skip or []))
        if not chosen:
            rec['reason'] = 'not selected (--steps/--skip)'
        elif spec.fallback_only and self.mode == 'full':
            rec['reason'] = 'fallback mode only (mmcv has its CUDA ops)'
        elif spec.needs_models and self.mode == 'fallback':
            rec['reason'] = ("fallback mode: mmcv's compiled ops are "
                             'missing, mmdet/mmseg models cannot be built '
                             f'({self.mmcv.get("error")})')
        elif not self.dry and self.left() < min(spec.est_s, 30) + 5:
            rec['reason'] = (f'not enough of the --budget left ('
                             f'{self.left():.0f} s, the step needs about '
                             f'{spec.est_s:.0f} s)')
        else:
            timeout = min(spec.cap_s, self.left() - 5)
            start = time.monotonic()
            try:
                status, reason, results, commands = fn(timeout)
            except Exception as e:  # a bug here must not stop the others
                status, reason, results, commands = (
                    'failed', f'{type(e).__name__}: {e}', {}, [])
            if self.dry and status == 'ok':
                status = 'dry-run'
            rec.update(status=status, seconds=time.monotonic() - start,
                       results=results, commands=commands)
            if reason:
                rec['reason'] = reason
        note = f' ({rec["reason"]})' if rec.get('reason') else ''
        say(f'step {spec.name}: {rec["status"]} in {rec["seconds"]:.1f} s '
            f'(estimate {spec.est_s:.0f} s){note}; total '
            f'{self.elapsed():.0f} s')
        self.steps.append(rec)

    @staticmethod
    def _status(res: Dict[str, Any]) -> tuple:
        if res['returncode'] is None:
            return 'timeout', (f'stopped at its limit after '
                               f'{res["seconds"]:.0f} s; see {res["log"]}')
        if res['returncode'] != 0:
            last = [l for l in res['tail'].splitlines() if l.strip()]
            return 'failed', (f'exit status {res["returncode"]}: '
                              f'{last[-1][:300] if last else ""} (see '
                              f'{res["log"]})')
        return 'ok', None

    # ---- machine -------------------------------------------------------
    def probe(self) -> None:
        code = '\n'.join([
            'import json, sys, torch',
            'c = torch.cuda',
            'd = dict(torch=torch.__version__, cuda=torch.version.cuda,',
            '         cuda_available=c.is_available(), gpus=c.device_count())',
            'if d["cuda_available"]:',
            '    d["gpu"] = c.get_device_name(0)',
            '    d["capability"] = list(c.get_device_capability(0))',
            '    mem = c.get_device_properties(0).total_memory',
            '    d["gpu_memory_gib"] = round(mem / 2**30, 1)',
            'try:',
            '    import torchvision',
            '    d["torchvision"] = torchvision.__version__',
            'except Exception:',
            '    pass',
            'print(json.dumps(d))', ''])
        self.machine = dict(python=platform.python_version(),
                            cpu_count=os.cpu_count() or 1,
                            platform=platform.platform(),
                            base_python=self.python)
        try:
            out = subprocess.run([self.python, '-c', code],
                                 capture_output=True, text=True, timeout=120)
            self.machine.update(
                json.loads(out.stdout.strip().splitlines()[-1]))
        except Exception as e:
            self.machine['probe_error'] = f'{type(e).__name__}: {e}'
        if shutil.which('nvidia-smi'):
            try:
                out = subprocess.run(
                    ['nvidia-smi', '--query-gpu=driver_version',
                     '--format=csv,noheader'], capture_output=True,
                    text=True, timeout=30)
                self.machine['driver'] = out.stdout.strip().splitlines()[0]
            except Exception:
                pass
        self.gpus = int(self.machine.get('gpus', 0) or 0)
        if self.machine.get('capability'):
            self.machine['torch_cuda_arch_list'] = cuda_arch_list(
                self.machine['capability'])
        say(f'machine: {self.machine.get("gpu", "no CUDA GPU")}, '
            f'{self.machine["cpu_count"]} cores, torch '
            f'{self.machine.get("torch", "?")} (CUDA '
            f'{self.machine.get("cuda")}), python {self.machine["python"]}')

    # ---- steps ---------------------------------------------------------
    def do_setup(self, timeout: float):
        a = self.args
        setup = osp.join(ROOT, SCRIPTS['setup_env'])
        if self.dry:
            res = self.run(['bash', '-n', setup], 'setup.log', 60)
            status, reason = self._status(res)
            pins = read_requirements(osp.join(ROOT, SCRIPTS['requirements']))
            results = dict(requirements=pins,
                           torch_cuda_arch_list_for_9_0=cuda_arch_list((9, 0)),
                           max_jobs=os.cpu_count())
            if a.wheelhouse:
                results['wheelhouse_missing'] = check_wheelhouse(
                    a.wheelhouse, osp.join(ROOT, SCRIPTS['requirements']))
            self.mmcv.update(source='dry run: not built',
                             cuda_ops=False)
            return status, reason, results, [res['cmd']]
        if a.no_setup:
            self.mmcv.update(source=f'--no-setup: {self.python} as it is')
            return self._mmcv_state(self.python, [])
        if not self.machine.get('cuda_available'):
            raise RuntimeError(f'{self.python} has no CUDA torch '
                               f'({self.machine.get("torch")}); run on a '
                               'GPU machine or pass --dry-run')
        env = self.env(
            PYTHON=self.python, VENV=self.venv,
            MAX_JOBS=os.cpu_count() or 1,
            TORCH_CUDA_ARCH_LIST=os.environ.get(
                'TORCH_CUDA_ARCH_LIST', self.machine['torch_cuda_arch_list']),
            MMFAPN_MMCV_BUILD_TIMEOUT=int(
                min(a.mmcv_build_timeout, max(30, timeout - 60))),
            MMFAPN_MMCV_FALLBACK='no-ops')
        if a.wheelhouse:
            env['MMFAPN_WHEELHOUSE'] = osp.abspath(a.wheelhouse)
            missing = check_wheelhouse(a.wheelhouse,
                                       osp.join(ROOT, SCRIPTS['requirements']))
            if missing:
                say('WARNING: the wheelhouse lacks ' + ', '.join(missing))
        res = self.run(['bash', setup], 'setup.log', timeout, env)
        status, reason = self._status(res)
        py = osp.join(self.venv, 'bin', 'python')
        if status != 'ok':
            self.mode = 'fallback'
            self.mmcv.update(source='setup failed', cuda_ops=False,
                             error=reason)
            if not osp.exists(py):
                py = self.python
            self.python = py
            return status, reason, dict(log=res['log']), [res['cmd']]
        self.python = py
        with open(res['log'], errors='replace') as f:
            log = f.read()
        built = re.search(r'built mmcv in (\d+) s', log)
        source = ('built' if built else 'carried wheel' if 'carried in'
                  in log else 'cached wheel' if 'cached mmcv wheel' in log
                  else 'already installed')
        self.mmcv.update(source=source,
                         build_s=int(built.group(1)) if built else None,
                         torch_cuda_arch_list=env['TORCH_CUDA_ARCH_LIST'],
                         max_jobs=int(env['MAX_JOBS']))
        status, reason, results, _ = self._mmcv_state(py, [res['cmd']])
        if a.export_wheel and self.mmcv['cuda_ops']:
            results['exported'] = self.export_wheel(a.export_wheel)
        return status, reason, results, [res['cmd']]

    def _mmcv_state(self, py: str, commands):
        """Whether ``py``'s mmcv runs its DCN on CUDA (else: fallback)."""
        marker = osp.join(self.venv, '.mmcv-no-ops')
        code = ('import torch\n'
                'from mmcv.ops import modulated_deform_conv2d as f\n'
                'z = torch.zeros(1, 1, 3, 3, device="cuda")\n'
                'f(z, torch.zeros(1, 18, 3, 3, device="cuda"), '
                'torch.ones(1, 9, 3, 3, device="cuda"), z, None,'
                ' 1, 1, 1, 1, 1)\n'
                'torch.cuda.synchronize(); print("mmcv cuda ops ok")\n')
        out = subprocess.run([py, '-c', code], capture_output=True,
                             text=True, timeout=120, env=self.env())
        ok = out.returncode == 0
        self.mmcv['cuda_ops'] = ok
        if not ok:
            self.mode = 'fallback'
            err = [l for l in out.stderr.splitlines() if l.strip()]
            why = (open(marker).read().strip() if osp.exists(marker) else
                   (err[-1] if err else 'unknown'))
            self.mmcv['error'] = why
            return 'ok', f'fallback mode: {why}', dict(mmcv=self.mmcv), \
                commands
        return 'ok', None, dict(mmcv=dict(self.mmcv)), commands

    def export_wheel(self, out_dir: str) -> List[str]:
        cache = os.environ.get('MMFAPN_WHEEL_CACHE',
                               osp.expanduser('~/.cache/mmfapn/wheels'))
        tag = f'{self.machine["torch_cuda_arch_list"].replace(".", "")}'
        found = sorted(glob.glob(osp.join(
            cache, f'mmcv-{MMCV_VERSION}-*-sm{tag}', 'mmcv-*.whl')),
            key=osp.getmtime)
        if not found:
            return []
        wheel = found[-1]
        dst = osp.join(out_dir, osp.basename(osp.dirname(wheel)))
        parts = split_file(wheel, dst)
        say(f'exported {wheel} as {len(parts)} file(s) under {dst}')
        return parts

    def pytest_step(self, timeout: float):
        files = sorted({
            osp.relpath(f, ROOT) for f in glob.glob(
                osp.join(ROOT, 'tests', '**', 'test_*.py'), recursive=True)
            if 'cuda' in open(f, errors='replace').read().lower()
            and not f.endswith('test_gpu_check.py')  # this tool's own tests
        } | {CUDA_TEST})
        if osp.exists(osp.join(ROOT, AUTOCAST_TEST)):
            files = sorted(set(files) | {AUTOCAST_TEST})
        if self.dry:  # the other files are collected by make test itself
            files = [f for f in files if f in (CUDA_TEST, AUTOCAST_TEST)]
        xml = osp.join(self.work, 'cuda_tests.xml')
        cmd = [self.python, '-m', 'pytest', '-q', '-rs', '-k', 'cuda',
               '-p', 'no:cacheprovider', f'--junitxml={xml}'] + files
        if self.dry:
            cmd = [self.python, '-m', 'pytest', '-q', '--collect-only',
                   '-p', 'no:cacheprovider', '-k', 'cuda'] + files
        res = self.run(cmd, 'cuda_tests.log', timeout)
        status, reason = self._status(res)
        results = dict(files=files, autocast_tests=osp.exists(
            osp.join(ROOT, AUTOCAST_TEST)))
        if self.dry:
            m = re.search(r'(\d+)(?:/\d+)? tests? collected', res['tail'])
            results['collected'] = int(m.group(1)) if m else None
            return status, reason, results, [cmd]
        if osp.exists(xml):
            results.update(parse_junit(xml))
            self.figures['cuda_tests'] = results
            if status == 'ok' and self.machine.get('cuda_available') and \
                    not results['passed']:
                status, reason = 'failed', 'no CUDA test ran (all skipped)'
            if status == 'failed' and results.get('failed_tests'):
                reason = (f'{results["failed"]} failed, {results["errors"]}'
                          f' errors: ' + ', '.join(results['failed_tests'])
                          [:400])
        return status, reason, results, [cmd]

    def jobs_step(self, name: str, jobs: List[Dict[str, Any]],
                  timeout: float):
        """Run benchmark ``jobs`` in one worker process (``--run-jobs``)."""
        plan = osp.join(self.work, f'{name}_jobs.json')
        out = osp.join(self.work, f'{name}_results.json')
        if osp.exists(out):
            os.remove(out)
        with open(plan, 'w') as f:
            json.dump(jobs, f, indent=1)
        cmd = [self.python, osp.join(ROOT, 'tools', 'gpu_check.py'),
               '--run-jobs', plan, '--jobs-out', out]
        if self.dry:  # in this process: the toolboxes are imported once
            cmd.append('--dry-run')
            use_checkout()
            run_jobs(plan, out, dry=True)
            status, reason = 'ok', None
        else:
            res = self.run(cmd, f'{name}.log', timeout)
            status, reason = self._status(res)
        results = {}
        if osp.exists(out):
            with open(out) as f:
                results = json.load(f)
            bad = [j for j, r in results.items() if r['status'] != 'ok']
            if bad and status == 'ok':
                status = 'failed'
                reason = '; '.join(f'{j}: {results[j].get("error", "")}'
                                   for j in bad)[:600]
        return status, reason, results, [cmd]

    def bench_dcn_jobs(self) -> List[Dict[str, Any]]:
        impls = (['torch', 'mmcv', 'dense'] if self.mode != 'fallback' else
                 ['torch', 'dense', 'torchvision'])
        if self.mode == 'dry-run':
            impls = ['torch', 'mmcv', 'dense', 'torchvision']
        out = osp.join(self.work, 'bench_dcn_cuda.json')
        return [dict(name='bench_dcn', tool='bench_dcn', json=out, argv=[
            '--device', 'cuda', '--inputs', '512x1024', '1024x2048',
            '--levels', 'P2', 'P3', 'P4', '--impls', *impls, '--repeat',
            '20', '--max-case-seconds', '10', '--json', out])]

    def realtime_jobs(self) -> List[Dict[str, Any]]:
        jobs = []
        for key, cfg, (h, w), _ in REALTIME:
            variants = list(VARIANTS)
            if key == 'r18_768x1536':
                variants.append(('fp32_dcn-torch', []))
            for vname, opts in variants:
                out = osp.join(self.work, f'rt_{key}_{vname}.json')
                jobs.append(dict(
                    name=f'{key}_{vname}', tool='benchmark', json=out,
                    env=dict(MMFAPN_DCN_IMPL='torch')
                    if vname.endswith('dcn-torch') else {},
                    argv=[cfg, '--device', 'cuda', '--shape', str(h), str(w),
                          '--batch', '1', '--iters', '30', '--warmup', '10',
                          '--no-flops', '--cudnn-benchmark', *opts, '--json',
                          out]))
        return jobs

    def pointrend_jobs(self) -> List[Dict[str, Any]]:
        jobs = []
        for mode, batch, iters in (('inference', 1, 20), ('train', 2, 10)):
            out = osp.join(self.work, f'pointrend_{mode}.json')
            jobs.append(dict(
                name=f'pointrend_{mode}', tool='benchmark', json=out,
                argv=[POINTREND_FAPN, '--compare', POINTREND_FPN, '--mode',
                      mode, '--device', 'cuda', '--shape', '512', '1024',
                      '--batch', str(batch), '--iters', str(iters),
                      '--warmup', '5', '--no-flops', '--cudnn-benchmark',
                      '--json', out]))
        return jobs

    def modules_jobs(self) -> List[Dict[str, Any]]:
        jobs = []
        for name, chans, out_c, (h, w) in (
                ('fapn_neck_r18_768x1536', [64, 128, 256, 512], 128,
                 (768, 1536)),
                ('fapn_neck_r50_512x1024', [256, 512, 1024, 2048], 256,
                 (512, 1024))):
            for amp in (None, 'float16'):
                for mode in ('fwd', 'fwdbwd'):
                    jobs.append(dict(
                        name=f'{name}_{amp or "fp32"}_{mode}', tool='module',
                        in_channels=chans, out_channels=out_c, input=[h, w],
                        amp=amp, mode=mode))
        return jobs

    def train_step(self, timeout: float):
        data = osp.join(self.work, 'toycity')
        work = osp.join(self.work, 'train_amp')
        make = [self.python, osp.join(ROOT, SCRIPTS['make_toy']), data,
                '--num-train', '16', '--num-val', '2', '--height', '128',
                '--width', '256']
        train = [self.python, osp.join(ROOT, SCRIPTS['train']),
                 osp.join(ROOT, TRAIN_CONFIG), '--amp', '--work-dir', work,
                 '--cfg-options', f'train_dataloader.dataset.data_root={data}',
                 f'val_dataloader.dataset.data_root={data}',
                 f'test_dataloader.dataset.data_root={data}',
                 f'train_cfg.max_iters={TRAIN_ITERS}',
                 'train_cfg.val_interval=100000',
                 'default_hooks.logger.interval=1',
                 'log_processor.window_size=1',
                 'default_hooks.checkpoint.interval=100000']
        if self.dry:
            cmds = [[self.python, osp.join(ROOT, SCRIPTS['make_toy']),
                     '--help'],
                    [self.python, osp.join(ROOT, SCRIPTS['train']), '--help']]
            for c in cmds:
                res = self.run(c, 'train_amp.log', timeout)
                status, reason = self._status(res)
                if status != 'ok':
                    return status, reason, {}, cmds
            configs = check_configs()  # in this process (imported once)
            return 'ok', None, dict(make=make, train=train,
                                    configs_loaded=configs), cmds
        start = time.monotonic()
        shutil.rmtree(work, ignore_errors=True)
        res = self.run(make, 'train_amp.log', min(60, timeout))
        status, reason = self._status(res)
        if status != 'ok':
            return status, reason, {}, [make]
        res = self.run(train, 'train_amp.log',
                       timeout - (time.monotonic() - start))
        status, reason = self._status(res)
        results = training_losses(work)
        results['amp_optim_wrapper'] = 'AmpOptimWrapper' in open(
            res['log'], errors='replace').read()
        self.figures['train_amp'] = results
        if status == 'ok':
            problems = []
            if results['iters'] != TRAIN_ITERS:
                problems.append(f'{results["iters"]} of {TRAIN_ITERS} '
                                'iterations logged')
            if not results['finite']:
                problems.append('a non-finite loss')
            if not (results.get('last10') is not None and
                    results['last10'] < results['first10']):
                problems.append(f'loss did not decrease (first 10 '
                                f'{results.get("first10")}, last 10 '
                                f'{results.get("last10")})')
            if not results['amp_optim_wrapper']:
                problems.append('AmpOptimWrapper not in the log')
            if problems:
                status, reason = 'failed', '; '.join(problems)
        return status, reason, results, [make, train]

    def ddp_step(self, timeout: float):
        dist = osp.join(ROOT, SCRIPTS['dist_train'])
        data = osp.join(self.work, 'toycity')
        cmd = ['bash', dist, osp.join(ROOT, TRAIN_CONFIG), '2', '--work-dir',
               osp.join(self.work, 'ddp'), '--cfg-options',
               f'train_dataloader.dataset.data_root={data}',
               'train_cfg.max_iters=2', 'train_cfg.val_interval=100000',
               'default_hooks.logger.interval=1',
               'default_hooks.checkpoint.interval=100000',
               'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None']
        if self.dry:
            res = self.run(['bash', '-n', dist], 'ddp.log', 30)
            status, reason = self._status(res)
            return status, reason, dict(command=cmd), [res['cmd']]
        if self.gpus < 2:
            return 'skipped', (f'{self.gpus} CUDA device(s): a 2-process '
                               'NCCL step needs 2'), {}, [cmd]
        if not osp.isdir(data):
            make = [self.python, osp.join(ROOT, SCRIPTS['make_toy']), data,
                    '--num-train', '8', '--num-val', '2', '--height', '128',
                    '--width', '256']
            self.run(make, 'ddp.log', 60)
        res = self.run(cmd, 'ddp.log', timeout,
                       self.env(PYTHON=self.python, PORT=29517))
        status, reason = self._status(res)
        log = open(res['log'], errors='replace').read()
        results = dict(iterations_logged='Iter(train) [2/2]' in log,
                       gloo_fallback='gloo backend' in log)
        if status == 'ok' and (not results['iterations_logged'] or
                               results['gloo_fallback']):
            status, reason = 'failed', f'unexpected log: {results}'
        return status, reason, results, [cmd]

    # ---- summaries -----------------------------------------------------
    def summarise(self) -> None:
        if self.dry:  # nothing was measured
            return
        for rec in self.steps:
            r = rec['results']
            if rec['name'] == 'bench_dcn' and r.get('bench_dcn', {}).get(
                    'data'):
                self.figures['bench_dcn'] = summarise_bench_dcn(
                    r['bench_dcn']['data'])
            if rec['name'] == 'realtime' and r:
                rows, variants = [], [v for v, _ in VARIANTS] + [
                    'fp32_dcn-torch']
                for key, _, _, paper in REALTIME:
                    row = dict(model=key, paper_fps=paper)
                    for v in variants:
                        job = r.get(f'{key}_{v}', {})
                        if job.get('status') == 'ok':
                            row[v] = job['data']['models'][0]['fps']
                    rows.append(row)
                self.figures['realtime'] = dict(variants=variants,
                                                rows=rows)
                rec['summary'] = '; '.join(
                    f'{row["model"]} fp32 {_fmt(row.get("fp32"))} FPS'
                    for row in rows)
            if rec['name'] == 'pointrend' and r:
                p = {}
                for mode in ('inference', 'train'):
                    job = r.get(f'pointrend_{mode}', {})
                    if job.get('status') == 'ok':
                        d = job['data']
                        p[mode] = d['ratio']['latency']
                        p[f'{mode}_fapn_ms'] = 1e3 * d['models'][0][
                            'latency_s']['median']
                        p[f'{mode}_fpn_ms'] = 1e3 * d['models'][1][
                            'latency_s']['median']
                self.figures['pointrend'] = p
                rec['summary'] = (
                    f'FaPN/FPN inference {_fmt(p.get("inference"), 3)}, '
                    f'train {_fmt(p.get("train"), 3)}')
            if rec['name'] == 'modules' and r:
                self.figures['modules'] = dict(rows=[
                    dict(name=k, median_ms=v['data']['median_ms'])
                    for k, v in r.items() if v.get('status') == 'ok'])
            if rec['name'] == 'train_amp' and 'first10' in r:
                rec['summary'] = (f'loss {_fmt(r["first10"], 3)} -> '
                                  f'{_fmt(r["last10"], 3)}')
            if rec['name'] == 'cuda_tests' and 'passed' in r:
                rec['summary'] = (f'{r["passed"]} passed, {r["failed"]} '
                                  f'failed, {r["skipped"]} skipped')

    def report(self) -> Dict[str, Any]:
        self.summarise()
        report = dict(
            schema=SCHEMA, mode=self.mode, started=self.started,
            finished=utc_now(), wall_s=round(self.elapsed(), 1),
            budget_s=float(self.args.budget), machine=self.machine,
            mmcv=self.mmcv, steps=self.steps, figures=self.figures,
            note=('GPU figures come from this run on the machine named; the '
                  "paper's FPS are the paper's (Titan RTX)"))
        validate_report(report)
        path = osp.join(self.work, 'report.json')
        with open(path, 'w') as f:
            json.dump(report, f, indent=2)
        write_markdown(report, osp.join(self.work, 'report.md'))
        say(f'wrote {path} and report.md (mode {self.mode}, '
            f'{self.elapsed():.0f} s)')
        return report

    def main(self) -> int:
        self.started = utc_now()
        say(f'{"dry run" if self.dry else "GPU check"}: budget '
            f'{self.args.budget:.0f} s, work dir {self.work}')
        self.probe()
        self.step(STEPS[0], self.do_setup)
        if self.steps[0]['status'] == 'skipped' and not self.dry:
            # not selected: an environment set up earlier, if any
            venv_py = osp.join(self.venv, 'bin', 'python')
            if osp.exists(venv_py):
                self.python = venv_py
            self.mmcv['source'] = f'setup skipped: {self.python} as it is'
            try:
                self._mmcv_state(self.python, [])
            except Exception as e:
                self.mode, self.mmcv['error'] = 'fallback', repr(e)
        by_name = {s.name: s for s in STEPS}
        self.step(by_name['cuda_tests'], self.pytest_step)
        self.step(by_name['bench_dcn'], lambda t: self.jobs_step(
            'bench_dcn', self.bench_dcn_jobs(), t))
        self.step(by_name['train_amp'], self.train_step)
        self.step(by_name['realtime'], lambda t: self.jobs_step(
            'realtime', self.realtime_jobs(), t))
        self.step(by_name['pointrend'], lambda t: self.jobs_step(
            'pointrend', self.pointrend_jobs(), t))
        self.step(by_name['ddp'], self.ddp_step)
        if self.dry:  # wired in a dry run too
            by_name['modules'].fallback_only = False
        self.step(by_name['modules'], lambda t: self.jobs_step(
            'modules', self.modules_jobs(), t))
        report = self.report()
        bad = [s['name'] for s in report['steps']
               if s['status'] in ('failed', 'timeout')]
        if bad:
            say(f'FAILED steps: {", ".join(bad)}')
        return 1 if bad else 0


def parse_junit(path: str) -> Dict[str, Any]:
    root = ET.parse(path).getroot()
    counts = dict(passed=0, failed=0, errors=0, skipped=0)
    failed, skipped = [], {}
    for case in root.iter('testcase'):
        name = f'{case.get("classname", "")}::{case.get("name")}'
        if case.find('failure') is not None:
            counts['failed'] += 1
            failed.append(name)
        elif case.find('error') is not None:
            counts['errors'] += 1
            failed.append(name)
        elif case.find('skipped') is not None:
            counts['skipped'] += 1
            skipped[name] = (case.find('skipped').get('message') or '')[:200]
        else:
            counts['passed'] += 1
    return dict(counts, failed_tests=failed, skipped_reasons=skipped)


def training_losses(work: str) -> Dict[str, Any]:
    """Loss per iteration from mmengine's ``vis_data/scalars.json``."""
    losses, times = {}, []
    for path in sorted(glob.glob(osp.join(work, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    losses[rec['iter']] = rec['loss']
                    if 'time' in rec:
                        times.append(rec['time'])
    values = [losses[k] for k in sorted(losses)]
    out: Dict[str, Any] = dict(iters=len(values), losses=values,
                               finite=all(math.isfinite(v) for v in values))
    if len(values) >= 20:
        out['first10'] = sum(values[:10]) / 10
        out['last10'] = sum(values[-10:]) / 10
    if times:
        out['iter_s_median'] = sorted(times)[len(times) // 2]
    return out


def summarise_bench_dcn(data: Dict[str, Any]) -> Dict[str, Any]:
    rows, impls = {}, []
    for c in data['cases']:
        key = (f'{c["input"][0]}x{c["input"][1]}', c['level'], c['mode'])
        rows.setdefault(key, dict(input=key[0], level=key[1], mode=key[2]))
        rows[key][c['impl']] = 1e3 * c['median_s']
        if c['impl'] not in impls:
            impls.append(c['impl'])
    return dict(impls=impls, rows=list(rows.values()))


# --------------------------------------------------------------------------
# the worker: benchmark jobs in one process
# --------------------------------------------------------------------------
def _load_tool(name: str):
    path = osp.join(ROOT, SCRIPTS[name])
    spec = importlib.util.spec_from_file_location(f'gpu_check_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dry_argv(argv: List[str]) -> List[str]:
    """The same command line for the CPU (the tools reject --device cuda
    without CUDA)."""
    return ['cpu' if a == 'cuda' else a for a in argv]


def time_module(job: Dict[str, Any], dry: bool) -> Dict[str, Any]:
    """The FaPN neck alone on random features of an input's size."""
    import statistics

    import torch

    from mmfapn.models import FaPN
    device = 'cpu' if dry else 'cuda'
    h, w = job['input']
    amp = job.get('amp')
    if amp is not None:
        getattr(torch, amp)  # a dtype name
    if dry:  # the neck's code path, once, on a small input
        if amp is not None or job['mode'] != 'fwd':
            return dict(median_ms=None, runs=0)
        h, w = 64, 128
    torch.manual_seed(0)
    neck = FaPN(job['in_channels'], job['out_channels'], num_outs=4).to(
        device)
    feats = [torch.randn(1, c, h // s, w // s, device=device,
                         requires_grad=job['mode'] == 'fwdbwd')
             for c, s in zip(job['in_channels'], (4, 8, 16, 32))]

    def once():
        ctx = (torch.autocast(device, dtype=getattr(torch, amp)) if amp
               else torch.autocast(device, enabled=False))
        if job['mode'] == 'fwd':
            with torch.no_grad(), ctx:
                neck(feats)
        else:
            with ctx:
                outs = neck(feats)
            sum(o.float().sum() for o in outs).backward()

    times = []
    for i in range(1 if dry else 13):
        if not dry:
            torch.cuda.synchronize()
        t = time.perf_counter()
        once()
        if not dry:
            torch.cuda.synchronize()
        if i >= (0 if dry else 3):
            times.append(time.perf_counter() - t)
    return dict(median_ms=1e3 * statistics.median(times), runs=len(times))


def run_jobs(plan: str, out: str, dry: bool) -> int:
    with open(plan) as f:
        jobs = json.load(f)
    results: Dict[str, Any] = {}
    tools: Dict[str, Any] = {}
    for job in jobs:
        start = time.monotonic()
        rec: Dict[str, Any] = dict(status='ok')
        saved_env = {k: os.environ.get(k) for k in job.get('env', {})}
        os.environ.update(job.get('env', {}))
        try:
            if job['tool'] == 'module':
                rec['data'] = time_module(job, dry)
            else:
                tool = tools.get(job['tool']) or _load_tool(job['tool'])
                tools[job['tool']] = tool
                if dry:
                    args = tool.parse_args(_dry_argv(job['argv']))
                    rec['data'] = dict(parsed=True,
                                       config=getattr(args, 'config', None))
                else:
                    rc = tool.main(job['argv'])
                    if isinstance(rc, int) and rc != 0:
                        raise RuntimeError(f'exit status {rc}')
                    with open(job['json']) as f:
                        rec['data'] = json.load(f)
        except BaseException as e:  # SystemExit from argparse too
            if isinstance(e, KeyboardInterrupt):
                raise
            rec = dict(status='failed',
                       error=f'{type(e).__name__}: {str(e)[:500]}')
            print(f'[gpu-check worker] {job["name"]}: {rec["error"]}',
                  flush=True)
        finally:
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        rec['seconds'] = round(time.monotonic() - start, 2)
        results[job['name']] = rec
        torch = sys.modules.get('torch')
        if torch is not None and torch.cuda.is_available():
            import gc
            gc.collect()
            torch.cuda.empty_cache()  # the next job starts from a clean pool
        print(f'[gpu-check worker] {job["name"]}: {rec["status"]} in '
              f'{rec["seconds"]:.1f} s', flush=True)
        with open(out, 'w') as f:  # after every job: a timeout keeps these
            json.dump(results, f, indent=1)
    return 0


def check_configs() -> List[str]:
    """Every config the check uses loads (mmengine ``Config``); raises
    otherwise."""
    use_checkout()
    from mmfapn.apis import read_config
    paths = [c for _, c, _, _ in REALTIME] + [POINTREND_FAPN, POINTREND_FPN,
                                               TRAIN_CONFIG]
    import warnings
    for p in paths:
        with warnings.catch_warnings():  # pkg_resources' deprecation notes
            warnings.simplefilter('ignore')
            cfg = read_config(p if p.startswith('mmseg::') else
                              osp.join(ROOT, p))
        print(f'config ok: {p} (model {cfg.model.type})', flush=True)
    return paths


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].replace('``', ''))
    parser.add_argument('--dry-run', action='store_true',
                        help='CPU: check the wiring only (seconds)')
    parser.add_argument('--wheelhouse',
                        default=os.environ.get('MMFAPN_WHEELHOUSE'),
                        help='install offline from this folder (default: '
                        '$MMFAPN_WHEELHOUSE); see docs/gpu_check.md')
    parser.add_argument('--budget', type=float, default=600.0,
                        help='wall-time budget in seconds, set-up included')
    parser.add_argument('--mmcv-build-timeout', type=float, default=330.0,
                        help='stop the mmcv build after this many seconds '
                        'and go on in fallback mode')
    parser.add_argument('--steps', nargs='+', choices=STEP_NAMES,
                        help='run only these steps')
    parser.add_argument('--skip', nargs='+', choices=STEP_NAMES,
                        help='skip these steps')
    parser.add_argument('--no-setup', action='store_true',
                        help='use --python as it is (no setup_env.sh)')
    parser.add_argument('--python',
                        help='base python with a CUDA torch (default: this '
                        'one)')
    parser.add_argument('--export-wheel', metavar='DIR',
                        help='copy the built mmcv wheel here, in parts of '
                        'at most 15 MiB, to carry to the next run')
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs',
                                                       'gpu_check'))
    parser.add_argument('--run-jobs', help=argparse.SUPPRESS)
    parser.add_argument('--jobs-out', help=argparse.SUPPRESS)
    parser.add_argument('--check-configs', action='store_true',
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.budget < 60:
        parser.error(f'--budget must be >= 60 seconds, got {args.budget}')
    if args.wheelhouse and not osp.isdir(args.wheelhouse):
        parser.error(f'--wheelhouse {args.wheelhouse!r} is not a directory')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run_jobs:  # a worker: Check.env() put ROOT on PYTHONPATH
        return run_jobs(args.run_jobs, args.jobs_out, args.dry_run)
    if args.check_configs:
        check_configs()
        return 0
    venv_py = osp.join(ROOT, '.venv', 'bin', 'python')
    if args.dry_run and importlib.util.find_spec('torch') is None and \
            osp.exists(venv_py):
        # a dry run imports the tools in this process: use make test's env
        os.execv(venv_py, [venv_py, osp.abspath(__file__)] + (
            sys.argv[1:] if argv is None else list(argv)))
    return Check(args).main()


if __name__ == '__main__':
    sys.exit(main())
