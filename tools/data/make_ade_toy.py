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
from mmfapn.datasets import write_toy_ade
from mmfapn.datasets.toy_cli import run_toy_writer


def main(argv=None):
    return run_toy_writer(
        write_toy_ade,
        __doc__,
        argv,
        height=67,
        width=91,
        num_classes=150,
        classes_help='ADE ids used (2..150): wall plus num_classes-1 objects',
        splits=[('training', 'training'), ('validation', 'validation')])


if __name__ == '__main__':
    main()
