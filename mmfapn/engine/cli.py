"""The command lines of ``tools/train.py`` and ``tools/test.py``.

The tools are thin wrappers over :func:`run_train` and :func:`run_test`;
tests and scripts import them from here.  Both install mmfapn's checkpoint
hardening first (:func:`~mmfapn.engine.hardening.install_runtime_hardening`),
whatever the config's ``custom_imports`` says, then run every pre-flight
check (:mod:`mmfapn.engine.run_config`) before anything is built, and
print a failed check as one ``train.py: error: ...`` line (exit status 1).

Training (``--amp``): float16 autocast with dynamic loss scaling
(mmengine's ``AmpOptimWrapper``) on CUDA; without CUDA, bfloat16 autocast
on CPU (:class:`~mmfapn.engine.cpu_amp.CPUAmpOptimWrapper`).  ``--resume``
without a path resumes from the newest *complete* checkpoint in the work
directory (:func:`~mmfapn.engine.atomic_checkpoint.find_latest_checkpoint`);
with a path, from that checkpoint.
"""
import argparse
import logging
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction

from .hardening import install_runtime_hardening


def _add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (mmengine syntax)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def _set_local_rank(args: argparse.Namespace) -> argparse.Namespace:
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def parse_train_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """``tools/train.py``'s arguments (``argv`` None: ``sys.argv``)."""
    parser = argparse.ArgumentParser(description='Train an mmfapn config')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        help='resume from CKPT, or (no value) from the newest complete '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    _add_common_args(parser)
    return _set_local_rank(parser.parse_args(argv))


def parse_test_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """``tools/test.py``'s arguments (``argv`` None: ``sys.argv``)."""
    parser = argparse.ArgumentParser(description='Test an mmfapn config')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs/metrics')
    _add_common_args(parser)
    return _set_local_rank(parser.parse_args(argv))


def _use_amp(cfg: Config) -> None:
    from mmengine.logging import print_log
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in ('OptimWrapper', 'AmpOptimWrapper',
                       'CPUAmpOptimWrapper'):
        raise ValueError(f'--amp needs optim_wrapper.type=OptimWrapper, '
                         f'got {wrapper!r}')
    import torch
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:  # mmengine's AmpOptimWrapper needs a GPU
        cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
        for key in ('loss_scale', 'dtype'):  # AmpOptimWrapper's only
            cfg.optim_wrapper.pop(key, None)
        print_log('--amp without CUDA: bfloat16 autocast on CPU '
                  '(mmfapn.engine.CPUAmpOptimWrapper)', logger='current')


def prepare_train(args: argparse.Namespace) -> Config:
    """The config to train, with every pre-flight check done.

    Raises:
        FileNotFoundError | ValueError: a check failed (one line).
    """
    from mmengine.logging import print_log

    from .atomic_checkpoint import find_latest_checkpoint
    from .distributed import setup_distributed
    from .run_config import check_checkpoint_references, load_config
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    if args.amp:
        _use_amp(cfg)
    if args.resume == 'auto':
        latest = find_latest_checkpoint(cfg.work_dir)
        if latest is None:
            print_log(f'--resume: no complete checkpoint in {cfg.work_dir}; '
                      'training from the start', logger='current',
                      level=logging.WARNING)
        else:
            cfg.load_from, cfg.resume = latest, True
    elif args.resume is not None:
        cfg.load_from, cfg.resume = args.resume, True
    check_checkpoint_references(cfg)
    setup_distributed(cfg, args.launcher)
    return cfg


def prepare_test(args: argparse.Namespace) -> Config:
    """The config to test ``args.checkpoint`` with, every pre-flight check
    done (see :func:`prepare_train`)."""
    from .distributed import setup_distributed
    from .run_config import check_checkpoint_references, load_config
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'checkpoint file not found: {args.checkpoint!r}')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.load_from, cfg.resume = args.checkpoint, False
    # testing loads the checkpoint: pretrained initialisations do not run
    check_checkpoint_references(cfg, pretrained=False)
    setup_distributed(cfg, args.launcher)
    return cfg


def _checked_runner(tool: str, parse, prepare, split: str,
                    argv: Optional[List[str]]):
    """Install the hardening, parse ``argv``, run the pre-flight checks,
    build the runner and its ``split`` loop; a failed check exits with one
    ``<tool>: error: ...`` line."""
    install_runtime_hardening()
    args = parse(argv)
    try:
        cfg = prepare(args)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'{tool}: error: {e}')
    from .input_checks import EmptyDatasetError, build_loop_checked
    from .run_config import build_runner
    runner = build_runner(cfg)
    try:
        build_loop_checked(runner, split)  # names an empty dataset
    except EmptyDatasetError as e:
        sys.exit(f'{tool}: error: {e}')
    return runner


def run_train(argv: Optional[List[str]] = None) -> None:
    """``tools/train.py``: train a config (see the module docstring)."""
    from .pretrained_weights import PretrainedWeightsError
    runner = _checked_runner('train.py', parse_train_args, prepare_train,
                             'train', argv)
    try:
        runner.train()
    except PretrainedWeightsError as e:  # found loading it (e.g. offline)
        sys.exit(f'train.py: error: {e}')


def run_test(argv: Optional[List[str]] = None) -> dict:
    """``tools/test.py``: evaluate a checkpoint; returns the metrics."""
    runner = _checked_runner('test.py', parse_test_args, prepare_test,
                             'test', argv)
    return runner.test()
