"""Write docs/model_zoo.md from model-index.yml and the configs' metafiles.

    python tools/misc/gen_model_zoo.py [--check] [--root REPO]

``--check`` writes nothing and exits 1 if the page is stale (what
``tests/docs/test_model_zoo.py`` asserts).  ``make model-zoo`` runs this.
"""
import argparse
import os.path as osp
import sys

from mmfapn.utils.model_zoo import (MODEL_ZOO_PATH, REGENERATE_COMMAND,
                                    model_zoo_is_current, write_model_zoo)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--root',
        default=osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
        help='repository root (default: the one holding this tool)')
    parser.add_argument(
        '--check',
        action='store_true',
        help='exit 1 if the page is stale instead of writing it')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.check:
        if model_zoo_is_current(args.root):
            print(f'{MODEL_ZOO_PATH} is up to date')
            return 0
        print(f'{MODEL_ZOO_PATH} is stale: run `{REGENERATE_COMMAND}`',
              file=sys.stderr)
        return 1
    print(f'wrote {write_model_zoo(args.root)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
