"""Train an mmfapn config (mmdet or mmseg, picked from its default_scope).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
                          [--amp] [--cfg-options k=v ...]
                          [--launcher {none,pytorch,slurm,mpi}]

``--amp``: float16 autocast with dynamic loss scaling (mmengine's
``AmpOptimWrapper``) on CUDA; without CUDA, bfloat16 autocast on CPU
(``mmfapn.engine.CPUAmpOptimWrapper``).

``--resume`` without a path resumes from the newest *complete* checkpoint
in the work directory (see ``mmfapn.engine.find_latest_checkpoint``); with a
path, from that checkpoint.  The resumed run continues the interrupted one
bit for bit (the configs' ``ExactResumeRunner``; docs/reliability.md).  Multi-process: ``tools/dist_train.sh``,
``tools/slurm_train.sh``; without CUDA they use gloo and plain BN.
"""
import argparse
import logging
import os
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
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
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def prepare(args):
    """The config to train, with every pre-flight check done."""
    from mmengine.logging import print_log

    from mmfapn.engine import (check_checkpoint_references,
                               find_latest_checkpoint, load_config,
                               setup_distributed)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    if args.amp:
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


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = prepare(args)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'train.py: error: {e}')
    from mmfapn.engine import (EmptyDatasetError, PretrainedWeightsError,
                               build_loop_checked, build_runner)
    runner = build_runner(cfg)
    try:
        build_loop_checked(runner, 'train')  # names an empty dataset
    except EmptyDatasetError as e:
        sys.exit(f'train.py: error: {e}')
    try:
        runner.train()
    except PretrainedWeightsError as e:  # found loading it (e.g. offline)
        sys.exit(f'train.py: error: {e}')


if __name__ == '__main__':
    main()
