"""Pictures of FaPN's feature alignment (the paper's Fig. 6) for one image.

For every FAM of the model, finest level first, one row of panels at the
display size (the image scaled to at most ``max_width`` pixels wide):

=================  ==========================================================
``image``          the input image
``before``         the upsampled coarse feature entering the FAM
``after``          the aligned feature ``relu(MDCN(up))`` leaving it
``offsets``        mask-weighted mean sampling displacement as a colour
                   wheel (hue: direction, saturation: length up to the
                   level's maximum, white: none)
``arrows``         the same displacement as arrows over the dimmed image
=================  ==========================================================

``before`` and ``after`` are channel-reduced each on its own by default
(PCA or channel mean, see :func:`mmfapn.visualization.alignment.reduce_channels`),
which shows each map's structure; ``joint=True`` uses one basis and one
colour scale for both, so colours compare but a low-variance map looks flat.
Feature maps are cropped to the part covering the image (not the padding)
and upscaled with nearest neighbours, so one feature pixel is a visible
block.  A last row holds the model's prediction.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
from torch import nn

from mmfapn.apis.inference import Prediction, predict

from .alignment import (AlignmentRecorder, displacement_stats,
                        mean_displacement, reduce_channels)
from .drawing import (draw_arrows, flow_to_color, grid, resize_to, titled,
                      write_png)
from .prediction import render_prediction


@dataclass
class AlignmentVis:
    """Result of :func:`visualize_alignment`.

    Attributes:
        figure (np.ndarray): the montage (RGB uint8).
        panels (dict): name -> (h, w, 3) RGB panel without title, names
            ``fam{i}_s{stride}_{before|after|offsets|arrows}`` and
            ``prediction``.
        stats (list): per FAM (finest first): module name, stride, map
            size and :func:`~mmfapn.visualization.alignment.displacement_stats`.
        display_size (tuple): (h, w) of every panel.
    """
    figure: np.ndarray
    panels: Dict[str, np.ndarray] = field(default_factory=dict)
    stats: List[dict] = field(default_factory=list)
    display_size: Tuple[int, int] = (0, 0)


def display_size(height: int, width: int, max_width: int) -> Tuple[int, int]:
    """(h, w) of an image of (height, width) scaled to at most
    ``max_width`` wide (never enlarged)."""
    if max_width < 16:
        raise ValueError(f'max_width must be >= 16 pixels, got {max_width}')
    scale = min(1.0, max_width / width)
    return max(1, int(round(height * scale))), max(1, int(round(width *
                                                                scale)))


def visualize_alignment(model: nn.Module,
                        image: np.ndarray,
                        reduce: str = 'pca',
                        max_width: int = 512,
                        arrow_step: int = 12,
                        score_thr: float = 0.3,
                        joint: bool = False) -> AlignmentVis:
    """Run ``model`` (from :func:`mmfapn.apis.load_model`) on
    ``image`` (RGB uint8) recording every FAM, and draw the panels.

    Raises:
        ValueError: the model has no FeatureAlignModule.
    """
    recorder = AlignmentRecorder(model)
    with recorder:
        pred: Prediction = predict(model, image)
    records = recorder.records
    if not records:
        raise ValueError('no FeatureAlignModule ran during inference')
    dh, dw = display_size(*image.shape[:2], max_width)
    shown = resize_to(image, dh, dw)
    dimmed = (shown * 0.5 + 64).astype(np.uint8)
    # finest first (the paper's Fig. 6 shows the last, finest FAM)
    records = sorted(records, key=lambda r: -r.size[0] * r.size[1])
    vis = AlignmentVis(figure=np.zeros((1, 1, 3), np.uint8),
                       display_size=(dh, dw))
    rows = []
    for i, rec in enumerate(records):
        vh, vw = pred.valid_size(rec.size)
        stride = int(round(pred.input_shape[1] / rec.size[1]))
        before, after = reduce_channels(
            [rec.before[0, :, :vh, :vw], rec.after[0, :, :vh, :vw]], reduce,
            joint=joint)
        flow = mean_displacement(rec)[:vh, :vw]
        length = np.hypot(flow[..., 0], flow[..., 1])
        max_len = float(length.max())
        colour = flow_to_color(flow)
        # arrows: displacement in display pixels, scaled so the longest one
        # spans about one grid step (offsets are often sub-pixel)
        to_display = dw / vw
        longest = max(max_len * to_display, 1e-6)
        scale = min(1e3, 0.9 * arrow_step / longest)
        arrows = draw_arrows(dimmed, flow, step=arrow_step, scale=scale)
        key = f'fam{i}_s{stride}'
        panels = {
            f'{key}_before': resize_to(before, dh, dw, nearest=True),
            f'{key}_after': resize_to(after, dh, dw, nearest=True),
            f'{key}_offsets': resize_to(colour, dh, dw, nearest=True),
            f'{key}_arrows': arrows,
        }
        vis.panels.update(panels)
        stats = displacement_stats(rec, valid=(vh, vw))
        stats.update(stride=stride, reduce=reduce, joint=joint)
        vis.stats.append(stats)
        rows.append([
            titled(shown, f'image (FAM 1/{stride})'),
            titled(panels[f'{key}_before'], f'1/{stride} before FAM'),
            titled(panels[f'{key}_after'], f'1/{stride} after FAM'),
            titled(panels[f'{key}_offsets'],
                   f'offsets, max {max_len:.2f} px'),
            titled(arrows, f'offsets x{scale:.1f}'),
        ])
    prediction = resize_to(render_prediction(pred, model, score_thr), dh, dw)
    vis.panels['prediction'] = prediction
    rows.append([titled(prediction, 'prediction')])
    vis.figure = grid(rows)
    return vis


def save_alignment(vis: AlignmentVis, out_dir: str,
                   prefix: str = '') -> List[str]:
    """Write the montage (``{prefix}alignment.png``), every panel
    (``{prefix}{panel}.png``) and the statistics
    (``{prefix}alignment.json``) to ``out_dir``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [write_png(osp.join(out_dir, f'{prefix}alignment.png'),
                       vis.figure)]
    for name, panel in vis.panels.items():
        paths.append(write_png(osp.join(out_dir, f'{prefix}{name}.png'),
                               panel))
    path = osp.join(out_dir, f'{prefix}alignment.json')
    with open(path, 'w') as f:
        json.dump(dict(display_size=list(vis.display_size), fams=vis.stats),
                  f, indent=2)
    paths.append(path)
    return paths
