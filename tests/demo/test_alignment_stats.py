"""mmfapn.visualization.alignment.displacement_stats, the "mean / max offset"
figures of the README and the demo report: every field against a direct
computation from the DCNv2 offset layout (channel 2*(g*K+k) is dy and
2*(g*K+k)+1 dx of group g, tap k; mask channel g*K+k)."""
import math

import numpy as np
import pytest
import torch

from mmfapn.visualization.alignment import AlignmentRecord, displacement_stats

G, K = 2, 9


def _record(offset, mask, name='neck.align_modules.0'):
    """An AlignmentRecord holding the given (N, 2GK, H, W) offsets and
    (N, GK, H, W) masks (the feature maps do not enter the statistics)."""
    n, _, h, w = offset.shape
    return AlignmentRecord(
        name=name,
        before=torch.zeros(n, 4, h, w),
        after=torch.zeros(n, 4, h, w),
        offset=offset,
        mask=mask,
        deform_groups=G,
        kernel_size=(3, 3))


def _expected(offset, mask, valid=None):
    """The statistics with explicit loops over pixels, groups and taps."""
    offset, mask = offset.double().numpy(), mask.double().numpy()
    h, w = offset.shape[-2:]
    if valid is not None:
        h, w = valid
    lengths, raw = [], []
    for y in range(h):
        for x in range(w):
            sy = sx = sm = 0.0
            for g in range(G):
                for k in range(K):
                    dy = offset[2 * (g * K + k), y, x]
                    dx = offset[2 * (g * K + k) + 1, y, x]
                    m = mask[g * K + k, y, x]
                    sy, sx, sm = sy + m * dy, sx + m * dx, sm + m
                    raw.append(math.hypot(dy, dx))
            lengths.append(math.hypot(sy / sm, sx / sm))
    return dict(size=[h, w], mean_displacement_px=float(np.mean(lengths)),
                max_displacement_px=float(np.max(lengths)),
                mean_raw_offset_px=float(np.mean(raw)),
                mean_mask=float(mask[:, :h, :w].mean()))


def test_one_displaced_pixel_exact_values():
    """Every tap of pixel (1, 2) moved by (dy, dx) = (3, 4), the others not
    at all: length 5 there, 0 elsewhere, whatever the masks."""
    h, w = 3, 4
    offset = torch.zeros(1, 2 * G * K, h, w)
    offset[0, 0::2, 1, 2] = 3.0
    offset[0, 1::2, 1, 2] = 4.0
    mask = torch.full((1, G * K, h, w), 0.25)
    mask[0, :K] = 0.75  # group 0 weighs more; same offsets, same mean
    stats = displacement_stats(_record(offset, mask))
    assert stats == dict(
        name='neck.align_modules.0',
        size=[3, 4],
        mean_displacement_px=pytest.approx(5 / 12),
        max_displacement_px=pytest.approx(5.0),
        mean_raw_offset_px=pytest.approx(5 / 12),
        mean_mask=pytest.approx(0.5))


def test_mask_weighted_mean_versus_raw_offsets():
    """Taps moving in opposite directions cancel in the mask-weighted
    mean but not in the raw offset lengths; unequal masks shift it."""
    offset = torch.zeros(1, 2 * G * K, 1, 1)
    offset[0, 0] = 2.0   # group 0, tap 0: dy = +2
    offset[0, 2] = -2.0  # group 0, tap 1: dy = -2
    mask = torch.full((1, G * K, 1, 1), 0.5)
    stats = displacement_stats(_record(offset, mask))
    assert stats['mean_displacement_px'] == 0
    assert stats['max_displacement_px'] == 0
    assert stats['mean_raw_offset_px'] == pytest.approx(4 / (G * K))
    mask[0, 0] = 0.9  # tap 0 weighs more: mean dy = 2 * 0.4 / sum(m)
    stats = displacement_stats(_record(offset, mask))
    mean_dy = 2 * (0.9 - 0.5) / (0.9 + 0.5 * (G * K - 1))
    assert stats['mean_displacement_px'] == pytest.approx(mean_dy)
    assert stats['max_displacement_px'] == pytest.approx(mean_dy)
    assert stats['mean_raw_offset_px'] == pytest.approx(4 / (G * K))
    assert stats['mean_mask'] == pytest.approx((0.9 + 0.5 * 17) / 18)


@pytest.mark.parametrize('index', [0, 1])
@pytest.mark.parametrize('valid', [None, (4, 5)])
def test_random_offsets_against_loops(index, valid):
    """Random offsets and masks of a batch of two; ``index`` picks the
    image, ``valid`` the top-left region (the part not on padding)."""
    g = torch.Generator().manual_seed(3)
    h, w = 6, 7
    offset = 1.5 * torch.randn(2, 2 * G * K, h, w, generator=g)
    mask = torch.rand(2, G * K, h, w, generator=g) * 0.9 + 0.05
    offset[1, :, 5, 6] += 40.0  # on image 1's padding only
    stats = displacement_stats(_record(offset, mask), index=index,
                               valid=valid)
    expected = _expected(offset[index], mask[index], valid)
    assert stats['name'] == 'neck.align_modules.0'
    assert stats['size'] == expected['size']
    for key in ('mean_displacement_px', 'max_displacement_px',
                'mean_raw_offset_px', 'mean_mask'):
        assert stats[key] == pytest.approx(expected[key], rel=1e-5), key
    # the maximum is a maximum, not the mean (the figures README quotes)
    assert stats['max_displacement_px'] > 1.5 * stats['mean_displacement_px']
    if index == 1:
        far = stats['max_displacement_px'] > 10
        assert far == (valid is None)  # the padding is left out
