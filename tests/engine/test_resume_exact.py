"""A run killed with SIGKILL and resumed with ``--resume`` equals the
uninterrupted run bit for bit (ExactResumeHook, ExactResumeRunner), and a
kill at any moment leaves the newest complete checkpoint to resume from.

The end-to-end tests run ``tools/train.py``'s command line
(:func:`mmfapn.engine.cli.run_train`) in separate processes, forked from
one server process that has imported mmfapn, mmdet and mmseg once (an
import costs ~6 CPU-seconds; the tests start 16 runs).  Each run is its
own process: it gets SIGKILL while the others go on, and a resumed run
starts from the files on disk only.  One resumed run is a fresh
``python tools/train.py --resume`` instead (new interpreter, new hash seed).
All runs use one thread (``OMP_NUM_THREADS=1``), so that equal inputs give
equal floats.
"""
import glob
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfapn.engine import (exact_resume_hook, find_latest_checkpoint,
                           install_runtime_hardening)
from mmfapn.engine.exact_resume_hook import (STATE_KEY, ExactResumeHook,
                                             _DeferredRemoval)
from mmfapn.engine.rng_state import capture_rng_state, restore_rng_state

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs' / 'seg' / 'demo' / 'sem-fpn_r18_fapn_toycity-demo.py'
MASK_RCNN = REPO / 'configs' / 'det' / 'mask_rcnn' / \
    'mask-rcnn_r50_fapn_1x_coco.py'

install_runtime_hardening()  # this process loads the runs' checkpoints


# -- unit tests -------------------------------------------------------------
def _draws():
    import random
    return (random.random(), float(np.random.rand()),
            float(torch.rand(())), float(torch.randn(())))


def test_rng_state_round_trip_needs_no_allowlisted_type(tmp_path):
    state = capture_rng_state()
    first = _draws()
    _draws()
    path = tmp_path / 'state.pth'
    torch.save({'meta': {STATE_KEY: {'ranks': [state]}}}, path)
    # plain tuples, ints, floats and uint8 tensors: nothing for the
    # allowlist of mmfapn.engine.safe_checkpoint
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(path)) == []
    loaded = torch.load(path, weights_only=True)['meta'][STATE_KEY]
    assert restore_rng_state(loaded['ranks'][0]) == []
    assert _draws() == first


def test_find_latest_checkpoint_after_kill_before_record(tmp_path):
    """CheckpointHook writes iter_N.pth, then last_checkpoint: a kill in
    between leaves a record naming the previous checkpoint."""
    for step in (2, 4, 10):
        torch.save({'meta': {'iter': step}}, tmp_path / f'iter_{step}.pth')
    record = tmp_path / 'last_checkpoint'
    record.write_text(str(tmp_path / 'iter_2.pth'))
    now = time.time()
    os.utime(tmp_path / 'iter_10.pth', (now - 100, now - 100))  # stale
    os.utime(record, (now - 50, now - 50))
    os.utime(tmp_path / 'iter_2.pth', (now - 60, now - 60))
    os.utime(tmp_path / 'iter_4.pth', (now, now))  # saved after the record
    assert find_latest_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'iter_4.pth')
    # a newer file that is not complete is not taken
    (tmp_path / 'iter_4.pth').write_bytes(b'PK\x03\x04 cut')
    os.utime(tmp_path / 'iter_4.pth', (now, now))
    assert find_latest_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'iter_2.pth')


def test_deferred_removal_waits_for_flush(tmp_path):
    from mmengine.fileio import get_file_backend
    (tmp_path / 'iter_2.pth').write_bytes(b'x')
    backend = _DeferredRemoval(get_file_backend(str(tmp_path)))
    backend.remove(str(tmp_path / 'iter_2.pth'))
    assert backend.isfile(str(tmp_path / 'iter_2.pth'))
    backend.flush()
    assert not (tmp_path / 'iter_2.pth').exists()


class _FakeRunner:
    _resume = True
    _load_from = 'work/iter_8.pth'


def test_checkpoint_without_state_resumes_with_one_warning(monkeypatch):
    logged = []
    monkeypatch.setattr(exact_resume_hook, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw['level'])))
    hook = ExactResumeHook()
    hook.after_load_checkpoint(_FakeRunner(), {'meta': {'iter': 8}})
    hook.before_train(_FakeRunner())  # returns before touching the loop
    assert logged == [(
        'resume from work/iter_8.pth: the checkpoint holds no random '
        'generator or data loader state (saved without ExactResumeHook); '
        'the continuation will not be bit-exact', 30)]
    # loading weights (load_from without resume) is not a resume
    logged.clear()
    hook = ExactResumeHook()
    runner = _FakeRunner()
    runner._resume = False
    hook.after_load_checkpoint(runner, {'meta': {}})
    hook.before_train(runner)
    assert logged == []


# -- end to end -------------------------------------------------------------
_SERVER = r'''
import importlib, json, os, sys, traceback
import torch
torch.set_num_threads(1)
from mmfapn.engine.cli import run_train
for scope in ('mmdet', 'mmseg'):  # what the runs' registries import
    for sub in ('datasets', 'engine', 'evaluation', 'models',
                'visualization'):
        importlib.import_module(f'{scope}.{sub}')


def slow_write(target, flag):
    """The atomic write of ``target`` writes half of the bytes to its
    temporary file, touches ``flag`` and stalls there (to be killed)."""
    import time
    import mmfapn.engine.atomic_checkpoint as ac

    class Stalling:
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.f.__exit__(*exc)
        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            os.fsync(self.f.fileno())
            with open(flag, 'w') as f:
                f.write('half written')
            time.sleep(600)
        def __getattr__(self, name):
            return getattr(self.f, name)

    def opener(path, mode='r', *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if os.path.basename(path).startswith(f'.{target}.tmp-'):
            return Stalling(f)
        return f
    ac.open = opener


for line in sys.stdin:
    job = json.loads(line)
    if job['op'] == 'wait':
        _, status = os.waitpid(job['pid'], 0)
        print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
        continue
    pid = os.fork()
    if pid:
        print(json.dumps(pid), flush=True)
        continue
    code = 1
    try:
        fd = os.open(job['log'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(job['env'])
        if job.get('slow_write'):
            slow_write(*job['slow_write'])
        run_train(job['argv'])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
'''


class _Runs:
    """Client of the fork server: start runs, kill them, wait for them."""

    def __init__(self, proc):
        self.proc = proc

    def _ask(self, job):
        self.proc.stdin.write(json.dumps(job) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, 'fork server died'
        return json.loads(line)

    def start(self, cfg, work_dir, *args, env=None, slow_write=None):
        os.makedirs(work_dir, exist_ok=True)
        argv = [str(cfg), '--work-dir', str(work_dir), *args]
        return self._ask(dict(op='run', argv=argv, env=env or {},
                              log=str(Path(work_dir) / 'run.log'),
                              slow_write=slow_write))

    def wait(self, pid):
        return self._ask(dict(op='wait', pid=pid))


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    script = tmp_path_factory.mktemp('fork_server') / 'server.py'
    script.write_text(_SERVER)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, env=env, text=True)
    yield _Runs(proc)
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.fixture(scope='module')
def toycity(tmp_path_factory):
    from mmfapn.datasets.toy_cityscapes import write_toy_cityscapes
    root = tmp_path_factory.mktemp('toycity')
    write_toy_cityscapes(str(root), num_train=4, num_val=1, height=64,
                         width=128)
    return str(root)


# The demo recipe (random resize, crop, flip; dropout; AdamW; warm-up)
# with its data on the generated images, batch 2, one loss per logged
# iteration and a checkpoint every 2 iterations (max_keep_ckpts=1, the
# demo's); validation only where a test asks for it.
_SEG = '''
_base_ = [{demo!r}]
data_root = {data!r}
train_dataloader = dict(
    batch_size=2, num_workers={workers}, persistent_workers={persistent},
    dataset=dict(data_root=data_root))
train_cfg = dict(max_iters={iters}, val_interval={val_interval})
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
log_processor = dict(window_size=1)
'''
_VAL = '''
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
'''
_NO_VAL = '''
val_dataloader = None
val_cfg = None
val_evaluator = None
'''


def _seg_config(tmp_path, data, iters, workers=0, val_interval=None):
    path = tmp_path / f'seg_w{workers}.py'
    path.write_text(_SEG.format(
        demo=str(DEMO), data=data, iters=iters, workers=workers,
        persistent=workers > 0, val_interval=val_interval or iters) +
        (_VAL if val_interval else _NO_VAL))
    return path


def _run_losses(work_dir) -> dict:
    """{iteration: loss} of the last run logged in ``work_dir``."""
    runs = sorted(glob.glob(osp.join(work_dir, '2*', 'vis_data',
                                     'scalars.json')))
    assert runs, f'no log in {work_dir}'
    losses = {}
    for line in open(runs[-1]):
        rec = json.loads(line)
        if 'loss' in rec:
            losses[rec['step']] = rec['loss']  # the global iteration
    return losses


def _kill_when(path: Path, pid: int, timeout=600):
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f'{path} did not appear'
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)


def _assert_same_weights(ref_ckpt, resumed_ckpt):
    ref = torch.load(ref_ckpt)['state_dict']
    got = torch.load(resumed_ckpt)['state_dict']
    assert set(ref) == set(got)
    diff = max(float((ref[k].double() - got[k].double()).abs().max())
               for k in ref if ref[k].numel())
    assert diff == 0.0, f'final weights differ by up to {diff}'
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def _resumed_from(log: str) -> int:
    import re
    found = re.findall(r'resumed epoch: \d+, iter: (\d+)', log)
    assert len(found) == 1, log[-3000:]
    return int(found[0])


def _check_exact(ref_dir, work, iters, resumed_at, final):
    ref = _run_losses(ref_dir)
    assert sorted(ref) == list(range(1, iters + 1))
    got = _run_losses(work)
    assert sorted(got) == list(range(resumed_at + 1, iters + 1))
    for it, loss in got.items():  # exact float equality
        assert loss == ref[it], (it, loss, ref[it])
    _assert_same_weights(Path(ref_dir) / final, Path(work) / final)


@pytest.mark.slow
def test_seg_killed_while_saving_resumes_from_previous_exactly(
        runs, toycity, tmp_path):
    """The demo recipe, no workers: killed half-way through writing
    iter_4.pth (its previous checkpoint, iter_2.pth, is kept despite
    max_keep_ckpts=1), resumed from iter_2.pth by a fresh
    ``tools/train.py --resume``."""
    cfg = _seg_config(tmp_path, toycity, iters=4)
    ref = runs.start(cfg, tmp_path / 'ref')
    flag = tmp_path / 'half_written'
    work = tmp_path / 'killed'
    killed = runs.start(cfg, work, slow_write=['iter_4.pth', str(flag)])
    _kill_when(flag, killed)
    assert runs.wait(killed) == -signal.SIGKILL
    assert runs.wait(ref) == 0, (tmp_path / 'ref' / 'run.log').read_text()
    left = sorted(os.listdir(work))
    assert 'iter_4.pth' not in left and 'iter_2.pth' in left
    assert [f for f in left if f.startswith('.iter_4.pth.tmp-')]
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')

    res = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(cfg),
         '--work-dir', str(work), '--resume'],
        env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True,
        text=True, timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert _resumed_from(log) == 2
    assert 'bit-exact' not in log
    _check_exact(tmp_path / 'ref', work, 4, 2, 'iter_4.pth')


@pytest.mark.slow
def test_seg_with_workers_killed_at_any_moment_resumes_exactly(
        runs, toycity, tmp_path):
    """Two data loader workers, validation after each checkpoint; killed
    as soon as iter_2.pth appears (wherever the run then is)."""
    cfg = _seg_config(tmp_path, toycity, iters=5, workers=2,
                      val_interval=2)
    ref = runs.start(cfg, tmp_path / 'ref')
    work = tmp_path / 'killed'
    killed = runs.start(cfg, work)
    _kill_when(work / 'iter_2.pth', killed)
    assert runs.wait(killed) == -signal.SIGKILL
    assert runs.wait(ref) == 0, (tmp_path / 'ref' / 'run.log').read_text()
    resumed = runs.start(cfg, work, '--resume')
    assert runs.wait(resumed) == 0, (work / 'run.log').read_text()[-3000:]
    log = (work / 'run.log').read_text()
    at = _resumed_from(log)
    assert at in (2, 4)
    assert 'bit-exact' not in log
    _check_exact(tmp_path / 'ref', work, 5, at, 'iter_5.pth')


_MASK_RCNN = '''
_base_ = [{config!r}]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(97, 65), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
# ResNet-18, the toy data's 4 classes, fewer proposals and sampled RoIs
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(bbox_head=dict(num_classes=4),
                  mask_head=dict(num_classes=4)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=100),
                   rcnn=dict(sampler=dict(num=64))))
train_dataloader = dict(  # the stock 2 persistent workers
    batch_size=2, dataset=dict(data_root={root!r}, pipeline=train_pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
log_processor = dict(window_size=1)
randomness = dict(seed=0)
'''


@pytest.mark.slow
def test_mask_rcnn_killed_at_any_moment_resumes_exactly(runs, tmp_path):
    """Mask R-CNN FaPN (epoch-based, 2 persistent workers, random flip,
    RPN/ROI sampling) on generated COCO data, killed as soon as
    epoch_1.pth appears; resumed with another seed in the config (the
    checkpoint's seed, sampler and worker seeds are taken)."""
    from mmfapn.datasets import write_toy_coco
    root = tmp_path / 'coco'
    write_toy_coco(str(root), num_train=2, num_val=1, height=65, width=97,
                   seed=0)  # one iteration per epoch
    cfg = tmp_path / 'mask_rcnn.py'
    cfg.write_text(_MASK_RCNN.format(config=str(MASK_RCNN), root=str(root)))
    ref = runs.start(cfg, tmp_path / 'ref')
    work = tmp_path / 'killed'
    killed = runs.start(cfg, work)
    _kill_when(work / 'epoch_1.pth', killed)
    assert runs.wait(killed) == -signal.SIGKILL
    assert runs.wait(ref) == 0, (tmp_path / 'ref' / 'run.log').read_text()
    resumed = runs.start(cfg, work, '--resume', '--cfg-options',
                         'randomness.seed=1')
    assert runs.wait(resumed) == 0, (work / 'run.log').read_text()[-3000:]
    log = (work / 'run.log').read_text()
    assert _resumed_from(log) == 1
    assert 'bit-exact' not in log
    _check_exact(tmp_path / 'ref', work, 2, 1, 'epoch_2.pth')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _start_ddp(runs, cfg, work, *args):
    port = str(_free_port())
    pids = []
    for rank in (0, 1):
        env = dict(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                   LOCAL_WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                   MASTER_PORT=port)
        rank_dir = work if rank == 0 else Path(f'{work}_rank1')
        os.makedirs(rank_dir, exist_ok=True)
        pids.append(runs._ask(dict(
            op='run', env=env, log=str(Path(rank_dir) / 'run.log'),
            argv=[str(cfg), '--work-dir', str(work), '--launcher',
                  'pytorch', *args])))
    return pids


@pytest.mark.slow
def test_ddp_two_processes_killed_at_any_moment_resume_exactly(
        runs, toycity, tmp_path):
    """2 processes (gloo, as tools/dist_train.sh starts them on a CPU), the
    demo recipe: each rank's generators differ; both ranks are killed as
    soon as iter_2.pth appears and resumed with 2 processes."""
    cfg = _seg_config(tmp_path, toycity, iters=5)
    ref_dir = tmp_path / 'ref'
    ref = _start_ddp(runs, cfg, ref_dir)
    work = tmp_path / 'killed'
    killed = _start_ddp(runs, cfg, work)
    deadline = time.time() + 600
    while not (work / 'iter_2.pth').exists():
        assert time.time() < deadline
        time.sleep(0.01)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    assert [runs.wait(p) for p in killed] == [-signal.SIGKILL] * 2
    assert [runs.wait(p) for p in ref] == [0, 0], \
        (ref_dir / 'run.log').read_text()[-3000:]
    ranks = torch.load(work / 'iter_2.pth')['meta'][STATE_KEY]['ranks']
    # the ranks' augmentations drew differently (e.g. RandomCrop retries)
    assert len(ranks) == 2 and ranks[0]['numpy'] != ranks[1]['numpy']
    resumed = _start_ddp(runs, cfg, work, '--resume')
    assert [runs.wait(p) for p in resumed] == [0, 0], \
        (work / 'run.log').read_text()[-3000:]
    log = (work / 'run.log').read_text()
    at = _resumed_from(log)
    assert at in (2, 4)
    assert 'bit-exact' not in log
    _check_exact(ref_dir, work, 5, at, 'iter_5.pth')
