"""Write a small ADE20K-format dataset (images/*.jpg, annotations/*.png with
raw ADE ids, 0 = "other") that mmseg's ADE20KDataset reads as is.

Example::

    python tools/data/make_ade_toy.py data/toy_ade \
        --num-train 8 --num-val 4 --height 67 --width 91

Then point a config at it::

    --cfg-options train_dataloader.dataset.data_root=data/toy_ade \
                  val_dataloader.dataset.data_root=data/toy_ade \
                  test_dataloader.dataset.data_root=data/toy_ade
"""
import argparse

from mmfapn.datasets import write_toy_ade


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=4)
    parser.add_argument('--num-val', type=int, default=2)
    parser.add_argument('--height', type=int, default=67)
    parser.add_argument('--width', type=int, default=91)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--num-classes',
        type=int,
        default=150,
        help='ADE ids used (2..150): wall plus num_classes-1 objects')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    info = write_toy_ade(
        args.root,
        num_train=args.num_train,
        num_val=args.num_val,
        height=args.height,
        width=args.width,
        seed=args.seed,
        num_classes=args.num_classes)
    print(f'wrote {len(info["training"])} training and '
          f'{len(info["validation"])} validation images '
          f'({args.height}x{args.width}) to {info["root"]}')


if __name__ == '__main__':
    main()
