#!/usr/bin/env python
"""Convert a released detectron2 FaPN checkpoint to mmdet / mmseg.

    python tools/model_converters/d2_fapn_to_mmdet.py IN OUT [--task det|seg]
        [--config CONFIG] [--trust-pickle]

IN is detectron2's ``model_final.pth`` (or a ``.pkl``) of Faster R-CNN,
Mask R-CNN, PointRend (instance or Cityscapes semantic) or Panoptic FPN with
FaPN, or of MaskFormer + FaPN (Swin-L ADE20K, R-101 COCO-Stuff-10K; mmseg).
The model is recognised from the keys (a checkpoint that is none of these
is refused with one ``error:`` line); the weights are checked
against the model of CONFIG (default: this repository's matching
``*_d2-weights.py`` config) and OUT is written only if every source key was
used (or is dropped on purpose, listed in the report) and every parameter
and buffer of the model was filled with the right shape.  The report is
printed; the exit status is 1 if the conversion fails.
"""
import argparse
import sys

from mmfapn.utils.d2_convert import (D2ConversionError, D2UnsupportedError,
                                     convert_d2_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a detectron2 FaPN checkpoint to mmdet/mmseg')
    parser.add_argument('src', help='detectron2 checkpoint (.pth or .pkl)')
    parser.add_argument('dst', help='output mmdet/mmseg checkpoint (.pth)')
    parser.add_argument(
        '--task',
        choices=['det', 'seg'],
        help='det: mmdet model, seg: mmseg model (default: from the keys; '
        'given, it must match them)')
    parser.add_argument(
        '--config',
        help='config whose model receives the weights (default: the '
        'matching configs/**/*_d2-weights.py)')
    parser.add_argument(
        '--trust-pickle',
        action='store_true',
        help='allow arbitrary pickled objects in SRC (only for files from a '
        'trusted source)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        report = convert_d2_checkpoint(
            args.src,
            args.dst,
            config=args.config,
            task=args.task,
            trust_pickle=args.trust_pickle)
    except D2UnsupportedError as e:
        print(f'error: {args.src}: {e}', file=sys.stderr)
        return 1
    except D2ConversionError as e:
        print(f'conversion failed:\n{e}', file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(report.format())
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
