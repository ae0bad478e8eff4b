"""Show what FaPN's feature alignment modules do on one image (the FaPN
paper's Fig. 6), for any mmdet or mmseg model that has FAMs.

    python tools/analysis/vis_alignment.py CONFIG CHECKPOINT IMAGE
        [--out-dir DIR] [--reduce pca|mean] [--max-width PX]
        [--arrow-step PX] [--score-thr T] [--device cpu|cuda]

Writes to ``--out-dir`` (default ``work_dirs/vis_alignment/<image name>``):

- ``alignment.png``: one row per FAM, finest first: image | upsampled
  feature before the FAM | aligned feature after it | mean sampling offset
  as a colour wheel | the offsets as arrows; last row the prediction;
- every panel on its own (``fam{i}_s{stride}_{before,after,offsets,
  arrows}.png``, ``prediction.png``);
- ``alignment.json``: per FAM its module name, stride, map size, mean and
  maximum offset length (pixels of its map) and mean modulation.

FAMs are found by type (``mmfapn.models.FeatureAlignModule``) wherever they
sit: the FaPN neck (mmdet and mmseg), ``FaPNHead``, ``UPerFaPNHead``,
``FaPNPixelDecoder``.  Features are channel-reduced by PCA (first three
components as RGB) or by the channel mean (``--reduce mean``), each map on
its own unless ``--joint`` (one basis and colour scale for before/after).
"""
import argparse
import os
import os.path as osp
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Visualise the feature alignment of a FaPN model')
    p.add_argument('config', help='mmdet or mmseg config of a FaPN model')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('image', help='input image file')
    p.add_argument('--out-dir', help='output folder (default '
                   'work_dirs/vis_alignment/<image name>)')
    p.add_argument('--reduce', choices=['pca', 'mean'], default='pca',
                   help='channel reduction of the features')
    p.add_argument('--joint', action='store_true',
                   help='one colour basis/scale for before and after')
    p.add_argument('--max-width', type=int, default=512,
                   help='panels are scaled to at most this width')
    p.add_argument('--arrow-step', type=int, default=12,
                   help='pixels between arrows')
    p.add_argument('--score-thr', type=float, default=0.3,
                   help='detection score threshold for the prediction')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmfapn.apis import load_model
    from mmfapn.visualization.alignment_figure import (save_alignment,
                                                       visualize_alignment)
    from mmfapn.visualization.drawing import read_rgb
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'vis_alignment',
        osp.splitext(osp.basename(args.image))[0])
    try:
        image = read_rgb(args.image)
        model = load_model(args.config, args.checkpoint, args.device)
        vis = visualize_alignment(
            model, image, reduce=args.reduce, max_width=args.max_width,
            arrow_step=args.arrow_step, score_thr=args.score_thr,
            joint=args.joint)
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f'vis_alignment.py: error: {e}', file=sys.stderr)
        return 2
    paths = save_alignment(vis, out_dir)
    print(f'{"FAM":<32} {"stride":>6} {"map":>9} {"mean off":>9} '
          f'{"max off":>8} {"mask":>6}')
    for s in vis.stats:
        size = f'{s["size"][0]}x{s["size"][1]}'
        print(f'{s["name"]:<32} {s["stride"]:>6} {size:>9} '
              f'{s["mean_displacement_px"]:>9.3f} '
              f'{s["max_displacement_px"]:>8.3f} {s["mean_mask"]:>6.3f}')
    print(f'wrote {len(paths)} files to {out_dir} (montage: {paths[0]})')
    return 0


if __name__ == '__main__':
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    sys.exit(main())
