"""tools/train.py, tools/test.py, tools/dist_train.sh, tools/slurm_train.sh:
interrupted runs, resume, distributed training on CPU, pre-flight errors.

Each run is a real subprocess with mmengine's Runner on the tiny FaPN
config (``tiny_fapn_seg_config`` in conftest.py: 4 iterations, batch 2,
64x128 images, no random augmentation).  The pre-flight errors call the
tools' command lines in this process (:mod:`mmfapn.engine.cli`).
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

import pytest
import torch

from mmfapn.engine import cli, install_runtime_hardening

install_runtime_hardening()  # this process loads the runs' checkpoints

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'

# Test-only hooks, imported by the runs through custom_imports.
_HOOKS = '''
import os
import time

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class PauseAfterIter(Hook):
    """After iteration ``iteration`` (and its checkpoint: CheckpointHook is
    VERY_LOW, this LOWEST), write ``flag`` and wait to be killed."""
    priority = 'LOWEST'

    def __init__(self, iteration, flag):
        self.iteration, self.flag = iteration, flag

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.iteration:
            with open(self.flag, 'w') as f:
                f.write(str(os.getpid()))
            time.sleep(600)


@HOOKS.register_module()
class DumpRankWeights(Hook):
    """At the end, save what this rank holds to rank{r}.pth."""
    priority = 'LOWEST'

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_train(self, runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        torch.save(model.state_dict(),
                   os.path.join(self.out_dir, f'rank{get_rank()}.pth'))


@HOOKS.register_module()
class RecordNeckDtype(Hook):
    """Write the dtype of the neck's first training output to ``path``."""

    def __init__(self, path):
        self.path = path

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model

        def record(module, args, out):
            if module.training and not os.path.exists(self.path):
                with open(self.path, 'w') as f:
                    f.write(str(out[0].dtype))

        model.neck.register_forward_hook(record)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def tools_env(tiny_fapn_seg_config, tmp_path_factory):
    """Directory with the test hooks module; environment for the runs."""
    root = tmp_path_factory.mktemp('tools')
    (root / 'mmfapn_test_hooks.py').write_text(_HOOKS)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(root), str(REPO)] +
        ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env['PYTHON'] = sys.executable
    env['OMP_NUM_THREADS'] = '1'
    return root, env


def _derived_config(root: Path, base: str, name: str, extra: str) -> str:
    path = root / f'{name}.py'
    path.write_text(f'_base_ = [{base!r}]\n'
                    "custom_imports = dict(imports=['mmfapn', "
                    "'mmfapn.engine.harden', 'mmfapn_test_hooks'], "
                    'allow_failed_imports=False)\n' +
                    extra)
    return str(path)


def _train(cfg, work_dir, env, *extra, timeout=600):
    cmd = [sys.executable, str(TOOLS / 'train.py'), cfg, '--work-dir',
           str(work_dir), *extra]
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _losses(work_dir) -> dict:
    """{iteration: loss} from every run logged in ``work_dir``."""
    losses = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        for line in open(path):
            rec = json.loads(line)
            if 'loss' in rec:
                losses.setdefault(rec['iter'], []).append(rec['loss'])
    return losses


@pytest.mark.slow
def test_killed_run_resumes_like_an_uninterrupted_one(
        tiny_fapn_seg_config, tools_env, tmp_path):
    root, env = tools_env
    # 1. uninterrupted: 4 iterations
    ref_dir = tmp_path / 'ref'
    ref = _train(tiny_fapn_seg_config, ref_dir, env)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_losses = _losses(ref_dir)
    assert sorted(ref_losses) == [1, 2, 3, 4]

    # 2. the same run, killed (SIGTERM, as a scheduler preempts) after
    #    iteration 2 has been checkpointed
    flag = tmp_path / 'paused'
    cfg = _derived_config(
        root, tiny_fapn_seg_config, 'pause_after_2',
        f'custom_hooks = [dict(type="PauseAfterIter", iteration=2, '
        f'flag={str(flag)!r})]\n')
    work = tmp_path / 'killed'
    proc = subprocess.Popen(
        [sys.executable, str(TOOLS / 'train.py'), cfg, '--work-dir',
         str(work)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 500
        while not flag.exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.time() < deadline, 'run did not reach iteration 2'
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert sorted(os.listdir(work)) == sorted(
        ['iter_1.pth', 'iter_2.pth', 'last_checkpoint', 'pause_after_2.py'] +
        [d for d in os.listdir(work) if d.startswith('20')])
    # A half-written iter_3.pth that last_checkpoint names (what a
    # non-atomic writer killed while saving, or a cut copy, leaves behind).
    data = (work / 'iter_2.pth').read_bytes()
    (work / 'iter_3.pth').write_bytes(data[:len(data) // 3])
    (work / 'last_checkpoint').write_text(str(work / 'iter_3.pth'))

    # 3. --resume: picks the last complete checkpoint, runs 3 and 4
    res = _train(tiny_fapn_seg_config, work, env, '--resume')
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert f"last_checkpoint names '{work / 'iter_3.pth'}', which is " \
           f'missing or incomplete; resuming from {work / "iter_2.pth"}' \
           in log
    assert 'resumed epoch: 0, iter: 2' in log
    losses = _losses(work)
    for it in (1, 2):  # the killed run, before the kill
        assert losses[it] == pytest.approx(ref_losses[it], abs=1e-6)
    for it in (3, 4):  # the resumed run
        assert len(losses[it]) == 1
        assert losses[it][0] == pytest.approx(ref_losses[it][0], abs=1e-6)
    final = torch.load(work / 'iter_4.pth')
    assert final['meta']['iter'] == 4
    expected = torch.load(ref_dir / 'iter_4.pth')['state_dict']
    for k, v in expected.items():
        torch.testing.assert_close(
            final['state_dict'][k], v, atol=1e-6, rtol=0, msg=k)


@pytest.mark.slow
def test_dist_train_two_cpu_processes(tiny_fapn_seg_config, tools_env,
                                      tmp_path):
    root, env = tools_env
    work = tmp_path / 'dist'
    work.mkdir()
    cfg = _derived_config(
        root, tiny_fapn_seg_config, 'dump_weights',
        f'custom_hooks = [dict(type="DumpRankWeights", '
        f'out_dir={str(work)!r})]\n')
    run_env = dict(env, PORT=str(_free_port()))
    res = subprocess.run(
        [str(TOOLS / 'dist_train.sh'), cfg, '2', '--work-dir', str(work)],
        env=run_env, capture_output=True, text=True, timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert "No CUDA: using the gloo backend instead of 'nccl'" in log
    assert 'No CUDA: converted 29 SyncBatchNorm layers to BatchNorm' in log
    assert 'Iter(train) [4/4]' in log
    saved = torch.load(work / 'iter_4.pth')['state_dict']
    first = torch.load(work / 'iter_1.pth')['state_dict']
    ranks = [torch.load(work / f'rank{r}.pth') for r in (0, 1)]
    for held in ranks:  # both ranks finished; each holds the saved model
        assert set(held) == set(saved)
        for k, v in saved.items():
            assert torch.equal(held[k], v), k
    # it trained: every parameter moved after iteration 1
    moved = [k for k in saved if not torch.equal(saved[k], first[k])]
    assert len(moved) == len(saved)

    # dist_test.sh evaluates the checkpoint with the same two processes
    res = subprocess.run(
        [str(TOOLS / 'dist_test.sh'), cfg,
         str(work / 'iter_4.pth'), '2', '--work-dir', str(work / 'test'),
         '--cfg-options', "test_evaluator.type=IoUMetric"],
        env=dict(env, PORT=str(_free_port())), capture_output=True,
        text=True, timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert 'Iter(test) [1/1]' in log  # 2 images over 2 ranks
    assert 'mIoU' in log


@pytest.mark.slow
def test_slurm_train_script_with_fake_srun(tiny_fapn_seg_config, tools_env,
                                           tmp_path):
    """slurm_train.sh -> srun -> train.py --launcher slurm, on the CPU: a
    stand-in ``srun`` records its arguments and starts one task with the
    SLURM variables that srun would set."""
    root, env = tools_env
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(
        '#!/usr/bin/env bash\n'
        'echo "srun $*" > "$SRUN_LOG"\n'
        # drop srun's options ('-p PARTITION' takes a value)
        'while [ $# -gt 0 ]; do case "$1" in -p) shift 2;; -*) shift;; '
        '*) break;; esac; done\n'
        'SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 '
        'SLURM_NODELIST=localhost MASTER_ADDR=127.0.0.1 exec "$@"\n')
    srun.chmod(0o755)
    work = tmp_path / 'slurm'
    run_env = dict(
        env, PATH=f'{bin_dir}{os.pathsep}{env["PATH"]}', GPUS='1',
        GPUS_PER_NODE='0', CPUS_PER_TASK='1', PORT=str(_free_port()),
        SRUN_LOG=str(tmp_path / 'srun.log'))
    res = subprocess.run(
        [str(TOOLS / 'slurm_train.sh'), 'cpu', 'fapn', tiny_fapn_seg_config,
         str(work), '--cfg-options', 'train_cfg.max_iters=1'],
        env=run_env, capture_output=True, text=True, timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    srun_args = (tmp_path / 'srun.log').read_text()
    assert '-p cpu --job-name=fapn --ntasks=1 --ntasks-per-node=1' \
        in srun_args
    assert '--gres' not in srun_args
    assert '--launcher=slurm' in srun_args
    assert "No CUDA: using the gloo backend instead of 'nccl'" in log
    assert torch.load(work / 'iter_1.pth')['meta']['iter'] == 1


def test_config_with_missing_checkpoint(tiny_fapn_seg_config, tmp_path,
                                        capsys):
    missing = str(tmp_path / 'no_such.pth')
    with pytest.raises(SystemExit) as info:
        cli.run_train([tiny_fapn_seg_config, '--work-dir', str(tmp_path),
                    '--cfg-options', f'load_from={missing}'])
    assert str(info.value) == (f"train.py: error: config load_from="
                               f"'{missing}': checkpoint file not found")

    pretrained = tmp_path / 'pretrained.py'
    pretrained.write_text(
        f'_base_ = [{tiny_fapn_seg_config!r}]\n'
        'model = dict(backbone=dict(init_cfg=dict(_delete_=True, '
        'type="Pretrained", '
        f'checkpoint={missing!r})))\n')
    with pytest.raises(SystemExit) as info:
        cli.run_train([str(pretrained), '--work-dir', str(tmp_path)])
    assert str(info.value) == (
        "train.py: error: config model.backbone.init_cfg.checkpoint="
        f"'{missing}': pretrained weights cannot be loaded (file not found)"
        "; to train from scratch: --cfg-options model.backbone.init_cfg=None")

    with pytest.raises(SystemExit) as info:
        cli.run_test([tiny_fapn_seg_config, missing])
    assert str(info.value) == (
        f"test.py: error: checkpoint file not found: '{missing}'")

    with pytest.raises(SystemExit) as info:
        cli.run_train([str(tmp_path / 'nope.py')])
    assert str(info.value) == (
        "train.py: error: config file not found: "
        f"'{tmp_path / 'nope.py'}'")


def test_resume_without_checkpoint_starts_from_scratch(tiny_fapn_seg_config,
                                                        tmp_path):
    args = cli.parse_train_args(
        [tiny_fapn_seg_config, '--work-dir', str(tmp_path), '--resume'])
    cfg = cli.prepare_train(args)
    assert cfg.load_from is None and not cfg.resume
    ckpt = tmp_path / 'given.pth'
    torch.save({'state_dict': {}}, ckpt)
    args = cli.parse_train_args([
        tiny_fapn_seg_config, '--work-dir',
        str(tmp_path), '--resume',
        str(ckpt)
    ])
    cfg = cli.prepare_train(args)
    assert cfg.load_from == str(ckpt) and cfg.resume


@pytest.mark.slow
def test_amp_without_cuda_trains_in_bfloat16(tiny_fapn_seg_config, tools_env,
                                             tmp_path):
    """``--amp`` on a CPU-only machine: bfloat16 autocast through
    CPUAmpOptimWrapper (mmengine's AmpOptimWrapper needs a GPU); the FaPN
    neck really runs in bfloat16 and the losses are finite."""
    root, env = tools_env
    flag = tmp_path / 'dtype.txt'
    cfg = _derived_config(
        root, tiny_fapn_seg_config, 'amp',
        f"custom_hooks = [dict(type='RecordNeckDtype', path={str(flag)!r})]\n")
    res = _train(cfg, tmp_path / 'work', env, '--amp')
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'bfloat16 autocast on CPU' in res.stdout + res.stderr
    assert flag.read_text() == 'torch.bfloat16'
    losses = _losses(tmp_path / 'work')
    assert sorted(losses) == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(v)).all()
               for v in losses.values())


@pytest.mark.slow
def test_mmengine_compile_switch_trains(tiny_fapn_seg_config, tools_env,
                                        tmp_path):
    """mmengine's ``compile`` switch (torch.compile of the train step)
    trains the tiny FaPN config: finite losses at every iteration.  The
    suite uses the ``aot_eager`` backend (dynamo + AOTAutograd, the same
    graphs and custom-op autograd as inductor, without inductor's minutes
    of C++ code generation on 2 cores); ``compile=True`` (inductor) passes
    the same test (README, Speed)."""
    root, env = tools_env
    res = _train(tiny_fapn_seg_config, tmp_path / 'work', env,
                 '--cfg-options', 'compile.backend=aot_eager', timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    losses = _losses(tmp_path / 'work')
    assert sorted(losses) == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(v)).all()
               for v in losses.values())
