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
from mmfapn.datasets import write_toy_cityscapes
from mmfapn.datasets.toy_cli import run_toy_writer


def main(argv=None):
    return run_toy_writer(
        write_toy_cityscapes,
        __doc__,
        argv,
        height=64,
        width=128,
        num_classes=19,
        classes_help='train ids used (2..19): road plus num_classes-1 objects',
        splits=[('train', 'train'), ('val', 'val')])


if __name__ == '__main__':
    main()
