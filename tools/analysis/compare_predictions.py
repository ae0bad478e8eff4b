"""Compare two semantic segmentation models (e.g. FPN and FaPN) image by
image: image | ground truth | model A | model B, boundary errors in red.

    python tools/analysis/compare_predictions.py \
        CONFIG_A CHECKPOINT_A CONFIG_B CHECKPOINT_B
        [--labels FPN FaPN] [--num N | --indices I ...] [--split val|test]
        [--data-root DIR] [--band PX] [--max-width PX] [--out FILE]
        [--device cpu|cuda]

Images and ground truth come from the first config's ``val`` (or
``test``) dataset, read by mmseg (``--data-root`` points it elsewhere).  In
each prediction panel, correct pixels keep their class colour (muted),
wrong pixels within ``--band`` px of a ground-truth outline are red and
other wrong pixels cyan; captions give the image's mIoU and boundary mIoU
at that band.  Prints the per-image scores.  mmseg models only (the
boundary metric is a semantic one).
"""
import argparse
import copy
import os
import os.path as osp
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Side-by-side predictions of two mmseg models')
    p.add_argument('config_a')
    p.add_argument('checkpoint_a')
    p.add_argument('config_b')
    p.add_argument('checkpoint_b')
    p.add_argument('--labels', nargs=2, default=['FPN', 'FaPN'])
    p.add_argument('--num', type=int, default=4,
                   help='the first N images of the split')
    p.add_argument('--indices', type=int, nargs='+',
                   help='these dataset indices instead of the first N')
    p.add_argument('--split', choices=['val', 'test'], default='val')
    p.add_argument('--data-root', help='override the dataset data_root')
    p.add_argument('--band', type=int, default=3,
                   help='boundary band width in pixels')
    p.add_argument('--max-width', type=int, default=320)
    p.add_argument('--out', default='work_dirs/compare_predictions.png')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def run(args):
    from mmengine.registry import init_default_scope

    from mmfapn.apis import load_model, predict
    from mmfapn.visualization.compare import (compare_figure,
                                              load_ground_truth, pick_indices)
    from mmfapn.visualization.drawing import make_palette, read_rgb, write_png
    if args.band < 1:
        raise ValueError(f'--band must be >= 1 pixel, got {args.band}')
    models = [
        load_model(args.config_a, args.checkpoint_a, args.device),
        load_model(args.config_b, args.checkpoint_b, args.device)
    ]
    for cfg_path, m in zip((args.config_a, args.config_b), models):
        if m.mmfapn_scope != 'mmseg':
            raise ValueError(f'{cfg_path}: compare_predictions compares '
                             f'mmseg models, got a {m.mmfapn_scope} config')
    classes = [m.decode_head.num_classes for m in models]
    if classes[0] != classes[1]:
        raise ValueError(f'the models predict different numbers of classes '
                         f'({classes[0]} vs {classes[1]})')
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    ds_cfg = copy.deepcopy(models[0].cfg[f'{args.split}_dataloader'].dataset)
    if args.data_root is not None:
        ds_cfg.data_root = args.data_root
    dataset = DATASETS.build(ds_cfg)
    palette = make_palette(classes[0],
                           (models[0].dataset_meta or {}).get('palette'))
    samples = []
    for i in pick_indices(args.num, len(dataset), args.indices):
        img_path, gt = load_ground_truth(dataset, i)
        image = read_rgb(img_path)
        preds = [
            predict(m, image).result.pred_sem_seg.data[0].cpu().numpy()
            for m in models
        ]
        samples.append(dict(image=image, gt=gt, preds=preds,
                            name=osp.basename(img_path)))
    figure, scores = compare_figure(samples, args.labels, classes[0],
                                    palette, band=args.band,
                                    max_width=args.max_width)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    write_png(args.out, figure)
    return samples, scores


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        samples, scores = run(args)
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f'compare_predictions.py: error: {e}', file=sys.stderr)
        return 2
    a, b = args.labels
    width = max(len('image'), *(len(s['name']) for s in samples))
    print(f'{"image":<{width}} {a + " mIoU":>10} {b + " mIoU":>10} '
          f'{a + " bIoU@" + str(args.band):>12} '
          f'{b + " bIoU@" + str(args.band):>12}')
    for s, sc in zip(samples, scores):
        print(f'{s["name"]:<{width}} {sc[a]["mIoU"]:>10.2f} '
              f'{sc[b]["mIoU"]:>10.2f} {sc[a]["bIoU"]:>12.2f} '
              f'{sc[b]["bIoU"]:>12.2f}')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    sys.exit(main())
