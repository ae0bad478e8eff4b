"""Evaluate a checkpoint with an mmfapn config (mmdet or mmseg, picked from
its default_scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
                         [--cfg-options k=v ...]
                         [--launcher {none,pytorch,slurm,mpi}]

Multi-process: ``tools/dist_test.sh``.  The checkpoint is loaded with
``weights_only=True`` and mmfapn's allowlist (docs/reliability.md).
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test an mmfapn config')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs/metrics')
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
    from mmfapn.engine import (check_checkpoint_references, load_config,
                               setup_distributed)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'checkpoint file not found: {args.checkpoint!r}')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.load_from, cfg.resume = args.checkpoint, False
    # testing loads the checkpoint: pretrained initialisations do not run
    check_checkpoint_references(cfg, pretrained=False)
    setup_distributed(cfg, args.launcher)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = prepare(args)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'test.py: error: {e}')
    from mmfapn.engine import (EmptyDatasetError, build_loop_checked,
                               build_runner)
    runner = build_runner(cfg)
    try:
        build_loop_checked(runner, 'test')  # names an empty dataset
    except EmptyDatasetError as e:
        sys.exit(f'test.py: error: {e}')
    return runner.test()


if __name__ == '__main__':
    main()
