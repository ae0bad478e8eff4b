"""Time BoundaryIoUMetric's per-image work on Cityscapes-sized maps.

Prints seconds per image (median of the repeats) for the default widths
(3, 5, 8, 12) on a 1024x2048 toy street scene with a prediction whose
outlines are displaced.  Example::

    python tools/analysis/benchmark_boundary_iou.py --repeats 5
"""
import argparse
import os
import platform
import time

import numpy as np

from mmfapn.datasets.toy_cityscapes import toy_cityscapes_scene
from mmfapn.evaluation import boundary_bands, boundary_intersect_and_union


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--height', type=int, default=1024)
    parser.add_argument('--width', type=int, default=2048)
    parser.add_argument('--widths', type=int, nargs='+', default=[3, 5, 8, 12])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    _, gt = toy_cityscapes_scene(args.height, args.width, 19, args.seed)
    # a prediction with shifted outlines and some noise
    pred = np.roll(np.where(gt == 255, 0, gt), (2, -3), axis=(0, 1))
    rng = np.random.default_rng(args.seed)
    noise = rng.random(gt.shape) < 0.01
    pred[noise] = rng.integers(0, 19, noise.sum())

    def timed(fn):
        """Median wall and CPU (process) seconds; numpy runs these on one
        core, so CPU time is what an idle machine would take."""
        wall, cpu = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        return float(np.median(wall)), float(np.median(cpu))

    t_band = timed(lambda: boundary_bands(gt, args.widths))
    t_all = timed(
        lambda: boundary_intersect_and_union(pred, gt, 19, args.widths))
    bands = boundary_bands(gt, args.widths)
    print(f'machine: {platform.machine()}, {os.cpu_count()} CPUs, load '
          f'average {os.getloadavg()[0]:.1f}, numpy {np.__version__}')
    print(f'map {args.height}x{args.width}, widths {tuple(args.widths)}, '
          f'band fractions {np.round(bands.mean((1, 2)), 3).tolist()}')
    print(f'bands only: {t_band[0]:.3f} s/image wall, {t_band[1]:.3f} s '
          f'CPU; bands + per-class areas: {t_all[0]:.3f} s/image wall, '
          f'{t_all[1]:.3f} s CPU (median of {args.repeats})')


if __name__ == '__main__':
    main()
