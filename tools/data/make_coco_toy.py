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
from mmfapn.datasets import write_toy_coco
from mmfapn.datasets.toy_cli import run_toy_writer


def main(argv=None):
    return run_toy_writer(
        write_toy_coco,
        __doc__,
        argv,
        height=64,
        width=96,
        num_classes=4,
        classes_help='thing classes used (1..80): the first COCO categories',
        splits=[('train_images', 'train'), ('val_images', 'val')],
        note=', instances + panoptic')


if __name__ == '__main__':
    main()
