"""The command line shared by the toy-dataset writers in ``tools/data/``."""
import argparse
from typing import Callable, List, Optional, Sequence, Tuple


def run_toy_writer(writer: Callable[..., dict],
                   doc: str,
                   argv: Optional[List[str]],
                   *,
                   height: int,
                   width: int,
                   num_classes: int,
                   classes_help: str,
                   splits: Sequence[Tuple[str, str]],
                   note: str = '') -> dict:
    """Parse ``argv`` and call ``writer(root, num_train=..., ...)``.

    Args:
        writer: a ``write_toy_*`` function of :mod:`mmfapn.datasets`.
        doc: the tool's module docstring (its first paragraph is the
            ``--help`` description).
        argv: command-line arguments (None: ``sys.argv``).
        height, width, num_classes: defaults of the options.
        classes_help: help text of ``--num-classes``.
        splits: ``(key in the writer's result, word printed)`` per split,
            e.g. ``[('train', 'train'), ('val', 'val')]``.
        note: appended to the size in the summary line.

    Returns:
        dict: what the writer returned.
    """
    parser = argparse.ArgumentParser(description=doc.split('\n\n')[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=4)
    parser.add_argument('--num-val', type=int, default=2)
    parser.add_argument('--height', type=int, default=height)
    parser.add_argument('--width', type=int, default=width)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--num-classes', type=int, default=num_classes, help=classes_help)
    args = parser.parse_args(argv)
    info = writer(
        args.root,
        num_train=args.num_train,
        num_val=args.num_val,
        height=args.height,
        width=args.width,
        seed=args.seed,
        num_classes=args.num_classes)
    counts = ' and '.join(f'{len(info[key])} {word}' for key, word in splits)
    print(f'wrote {counts} images ({args.height}x{args.width}{note}) '
          f'to {info["root"]}')
    return info
