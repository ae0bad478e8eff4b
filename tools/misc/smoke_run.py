"""Smoke-run any mmfapn config (mmdet or mmseg) on CPU in one command.

    python tools/misc/smoke_run.py CONFIG [--iters 2] [--work-dir DIR]
        [--image-size 128] [--batch-size 2] [--data-root DIR] [--no-test]
        [--cfg-options k=v ...]

Writes a toy dataset in the format the config reads (COCO instances or
panoptic, Cityscapes, ADE20K, COCO-Stuff-10K), points the config at it,
shrinks image sizes, batches, schedule and pretrained initialisation
(nothing is downloaded), trains ``--iters`` iterations with the config's
runner, evaluates with the config's metrics (validation, then the test
loop), and prints where the checkpoint, the log and the shrunk config are.
Exit status 1 with one ``smoke_run.py: error: ...`` line for a config it
cannot run.  Details: docs/user_guides/smoke_run.md.
"""
import argparse
import sys

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0] + ' Trains a few iterations on '
        'generated toy data and evaluates with the config\'s metrics.')
    parser.add_argument('config', help='config file (shipped or your own)')
    parser.add_argument('--iters', type=int, default=2,
                        help='training iterations (default 2)')
    parser.add_argument('--work-dir',
                        help='logs, checkpoint and toy data (default '
                        'work_dirs/smoke/<config name>)')
    parser.add_argument('--image-size', type=int, default=128,
                        help='longest side of the training crop (or test '
                        'resize) after shrinking (default 128)')
    parser.add_argument('--batch-size', type=int, default=2,
                        help='training batch size (default 2)')
    parser.add_argument('--data-root',
                        help='where to write the toy dataset (default '
                        'WORK_DIR/data/<kind>)')
    parser.add_argument('--no-test', action='store_true',
                        help='skip the test loop after training')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='overrides applied after shrinking, key=value (mmengine '
        'syntax)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmfapn.apis import smoke_run, summary_lines
    try:
        result = smoke_run(
            args.config, work_dir=args.work_dir, iters=args.iters,
            image_size=args.image_size, batch_size=args.batch_size,
            data_root=args.data_root, cfg_options=args.cfg_options,
            test=not args.no_test, seed=args.seed)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'smoke_run.py: error: {e}')
    print('\n'.join(summary_lines(result)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
