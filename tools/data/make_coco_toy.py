"""Write a small COCO-format dataset (train2017/, val2017/,
annotations/instances_*.json with polygons, annotations/panoptic_*.json with
panoptic PNGs) that mmdet's CocoDataset and CocoPanopticDataset read as is.

Example::

    python tools/data/make_coco_toy.py data/coco \
        --num-train 8 --num-val 4 --height 65 --width 97

``data/coco/`` is the stock configs' ``data_root``, so they find the toy
data without changing a path.  Elsewhere, point the dataloaders'
``data_root`` and the evaluators' ``ann_file`` (panoptic: also
``seg_prefix``) at it with ``--cfg-options``.
"""
import argparse

from mmfapn.datasets import write_toy_coco


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=4)
    parser.add_argument('--num-val', type=int, default=2)
    parser.add_argument('--height', type=int, default=64)
    parser.add_argument('--width', type=int, default=96)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--num-classes',
        type=int,
        default=4,
        help='thing classes used (1..80): the first COCO categories')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    info = write_toy_coco(
        args.root,
        num_train=args.num_train,
        num_val=args.num_val,
        height=args.height,
        width=args.width,
        seed=args.seed,
        num_classes=args.num_classes)
    print(f'wrote {len(info["train_images"])} train and '
          f'{len(info["val_images"])} val images ({args.height}x'
          f'{args.width}, instances + panoptic) to {info["root"]}')


if __name__ == '__main__':
    main()
