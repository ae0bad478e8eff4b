"""The one flow warp shared by every flow-based aligner (AlignSeg's AlignFA
and AlignCM): bilinear sampling of a map at ``p + flow(p)``."""
import torch
from torch import Tensor

PADDING_MODES = ('zeros', 'border')


def _base_coords(out_size: int, in_size: int, align_corners: bool,
                 ref: Tensor) -> Tensor:
    """Input coordinate (in input pixels) of each output pixel centre."""
    i = torch.arange(out_size, dtype=ref.dtype, device=ref.device)
    if out_size == in_size:
        return i  # exact: zero flow must be the exact identity
    if align_corners:
        if out_size == 1:
            return i
        return i * ((in_size - 1) / (out_size - 1))
    return (i + 0.5) * (in_size / out_size) - 0.5


def _flow_scale(out_size: int, in_size: int, align_corners: bool) -> float:
    """Input pixels per output pixel (flows are in output pixels)."""
    if out_size == in_size:
        return 1.0
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 1.0
    return in_size / out_size


def flow_warp(x: Tensor,
              flow: Tensor,
              align_corners: bool = False,
              padding_mode: str = 'zeros') -> Tensor:
    """Sample ``x`` bilinearly at ``p + flow(p)`` for every output pixel p.

    Conventions (stated because AlignSeg's released code got them wrong):

    * **Pixel units.** ``flow[:, 0]`` is the horizontal displacement dx
      (along W) and ``flow[:, 1]`` the vertical one dy (along H), in pixels
      of the output grid, as in optical flow and ``grid_sample``'s (x, y)
      order.  A constant flow of (+1, 0) gives ``out[..., j] = x[..., j + 1]``.
    * **Exact identity.** When ``x`` already has the flow's size, output
      pixel (i, j) starts at input pixel (i, j) exactly, so a zero flow
      returns ``x`` bit for bit (no normalised-coordinate round trip).
    * **Resampling.** When ``x`` is smaller or larger (e.g. AlignCM's pooled
      context), output pixels are mapped to input coordinates with the
      ``align_corners`` convention of ``F.interpolate``/``grid_sample`` and
      the flow is scaled to input pixels; with a zero flow and
      ``padding_mode='border'`` the result equals ``F.interpolate(x, size,
      mode='bilinear', align_corners=align_corners)``.
    * **Outside the map.** ``'zeros'``: each of the four bilinear corners
      that falls outside contributes 0 (as a deformable conv and
      ``grid_sample(padding_mode='zeros')``); ``'border'``: sampling
      positions are clamped to the map.

    * **Precision.** Sampling positions and weights are computed in at
      least float32, so float16/bfloat16 inputs (autocast) sample the same
      pixels; the output has ``x``'s dtype.

    This is a 1x1 modulated deformable conv with one deformable group,
    identity weight and mask 1, whose offset is ``flow[:, (1, 0)]`` (DCN
    offsets are (dy, dx)).  It is written with ``gather`` instead of
    ``grid_sample`` so that the identity above is exact.

    Args:
        x (Tensor): (N, C, H_in, W_in) map to warp.
        flow (Tensor): (N, 2, H, W) displacements (dx, dy) in output pixels.
        align_corners (bool): coordinate convention when ``H_in, W_in``
            differ from ``H, W`` (no effect otherwise). Default False.
        padding_mode (str): 'zeros' (default) or 'border'.

    Returns:
        Tensor: (N, C, H, W).
    """
    if not isinstance(x, Tensor) or not isinstance(flow, Tensor):
        raise TypeError('flow_warp: x and flow must be Tensors, got '
                        f'{type(x).__name__} and {type(flow).__name__}')
    if x.dim() != 4:
        raise ValueError('flow_warp: x must be (N, C, H, W), got shape '
                         f'{tuple(x.shape)}')
    if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != x.shape[0]:
        raise ValueError(
            f'flow_warp: flow must be (N={x.shape[0]}, 2, H, W), got shape '
            f'{tuple(flow.shape)}')
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'flow_warp: padding_mode must be one of '
                         f'{PADDING_MODES}, got {padding_mode!r}')
    if not isinstance(align_corners, bool):
        raise TypeError('flow_warp: align_corners must be a bool, got '
                        f'{align_corners!r}')
    n, c, h_in, w_in = x.shape
    h, w = flow.shape[-2:]
    # Positions and bilinear weights in float32 at least: in bfloat16 a
    # pixel index above 256 is not even representable (the flat index of
    # a corner would point past the map); the gathered values keep x's
    # dtype and are weighted in it.
    flow = flow.to(torch.promote_types(x.dtype, torch.float32))
    py = _base_coords(h, h_in, align_corners, flow).view(1, h, 1) + \
        flow[:, 1] * _flow_scale(h, h_in, align_corners)
    px = _base_coords(w, w_in, align_corners, flow).view(1, 1, w) + \
        flow[:, 0] * _flow_scale(w, w_in, align_corners)
    if padding_mode == 'border':
        py = py.clamp(0, h_in - 1)
        px = px.clamp(0, w_in - 1)
    y0 = torch.floor(py).detach()
    x0 = torch.floor(px).detach()
    ly = py - y0
    lx = px - x0
    flat = x.reshape(n, c, h_in * w_in)
    out = None
    for dy, wy in ((0, 1 - ly), (1, ly)):
        for dx, wx in ((0, 1 - lx), (1, lx)):
            yy = y0 + dy
            xx = x0 + dx
            valid = (yy >= 0) & (yy <= h_in - 1) & (xx >= 0) & \
                (xx <= w_in - 1)
            index = (yy.clamp(0, h_in - 1) * w_in +
                     xx.clamp(0, w_in - 1)).long().view(n, 1, h * w)
            corner = flat.gather(2, index.expand(n, c, h * w))
            weight = (wy * wx * valid.to(wy.dtype)).to(x.dtype).view(
                n, 1, h * w)
            term = corner * weight
            out = term if out is None else out + term
    return out.view(n, c, h, w)
