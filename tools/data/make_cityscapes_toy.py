"""Write a small Cityscapes-format dataset (leftImg8bit/, gtFine/ with
*_gtFine_labelTrainIds.png) that mmseg's CityscapesDataset reads as is.

Example::

    python tools/data/make_cityscapes_toy.py data/toy_cityscapes \
        --num-train 8 --num-val 4 --height 64 --width 128

Then point a config at it::

    --cfg-options train_dataloader.dataset.data_root=data/toy_cityscapes \
                  val_dataloader.dataset.data_root=data/toy_cityscapes \
                  test_dataloader.dataset.data_root=data/toy_cityscapes
"""
import argparse

from mmfapn.datasets import write_toy_cityscapes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=4)
    parser.add_argument('--num-val', type=int, default=2)
    parser.add_argument('--height', type=int, default=64)
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--num-classes',
        type=int,
        default=19,
        help='train ids used (2..19): road plus num_classes-1 objects')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    info = write_toy_cityscapes(
        args.root,
        num_train=args.num_train,
        num_val=args.num_val,
        height=args.height,
        width=args.width,
        seed=args.seed,
        num_classes=args.num_classes)
    print(f'wrote {len(info["train"])} train and {len(info["val"])} val '
          f'images ({args.height}x{args.width}) to {info["root"]}')


if __name__ == '__main__':
    main()
