"""Record what FaPN's feature alignment modules do during a forward pass.

Every :class:`~mmfapn.models.FeatureAlignModule` (FAM) in a model, whatever
holds it (the ``FaPN`` neck in mmdet or mmseg, ``RealtimeFaPNHead``,
``UPerFaPNHead``, ``FaPNPixelDecoder``), samples the upsampled coarse map
with its modulated deformable conv ``fam.dcn``::

    offset, mask = dcn.offset_and_mask(guide)
    aligned = relu(dcn(up, guide))   # MDCN of up with those offsets

:class:`AlignmentRecorder` puts a forward hook on each ``fam.dcn``, so it
sees exactly the two maps of the paper's Fig. 6: the input ``up`` (the
upsampled feature before alignment) and the output ``relu(dcn(...))`` (the
aligned feature), plus the offsets and modulation masks the FAM predicted
(recomputed from the hooked ``guide`` by ``dcn.offset_and_mask``, the code
the forward pass ran).  In the one-input "FAM after fusion" mode
(:class:`~mmfapn.models.layers.FeatureAlignAfterFusion`, a FAM) the input
is the fused map instead of ``up``.

Offset layout (mmcv = official DCNv2): for deformable group ``g`` and
kernel tap ``k`` (row-major), channel ``2 * (g * K + k)`` is the vertical
displacement ``dy`` and the next one ``dx``, in pixels of the map the FAM
works on.  :func:`mean_displacement` summarises the ``G * K`` displacements
of a pixel by their mask-weighted mean: where, on average, the aligned
feature of that pixel is sampled from relative to the regular 3x3 grid.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfapn.models.layers import FeatureAlignModule


def find_feature_align_modules(
        model: nn.Module) -> List[Tuple[str, FeatureAlignModule]]:
    """``(name, module)`` of every FAM in ``model``, in registration order
    (for the FaPN neck: coarse-to-fine is the reverse of that order)."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, FeatureAlignModule)]


@dataclass
class AlignmentRecord:
    """What one FAM computed for a batch.

    Attributes:
        name (str): module path in the model, e.g. ``'neck.align_modules.0'``.
        before (Tensor): (N, C, H, W) input of the deformable conv (the
            upsampled coarse feature).
        after (Tensor): (N, C, H, W) aligned feature ``relu(dcn(...))``.
        offset (Tensor): (N, 2*G*K, H, W) sampling offsets in pixels.
        mask (Tensor): (N, G*K, H, W) modulation in (0, 1).
        deform_groups (int): G.
        kernel_size (tuple): (kh, kw); K = kh * kw.
    """
    name: str
    before: Tensor
    after: Tensor
    offset: Tensor
    mask: Tensor
    deform_groups: int
    kernel_size: Tuple[int, int]

    @property
    def size(self) -> Tuple[int, int]:
        return tuple(self.before.shape[-2:])


def mean_displacement(record: AlignmentRecord, index: int = 0) -> np.ndarray:
    """(H, W, 2) mask-weighted mean (dy, dx) of the ``G*K`` sampling
    offsets of image ``index``, in pixels of the FAM's map."""
    g = record.deform_groups
    k = record.kernel_size[0] * record.kernel_size[1]
    off = record.offset[index].float()
    h, w = off.shape[-2:]
    off = off.reshape(g, k, 2, h, w)
    m = record.mask[index].float().reshape(g, k, 1, h, w)
    mean = (off * m).sum((0, 1)) / m.sum((0, 1)).clamp_min(1e-12)
    return mean.permute(1, 2, 0).cpu().numpy()


class AlignmentRecorder:
    """Context manager recording every FAM of ``model`` during forwards.

    Example::

        with AlignmentRecorder(model) as rec:
            model.test_step(data)
        for r in rec.records:   # one AlignmentRecord per FAM
            ...

    Only the first call of each FAM inside the ``with`` block is kept
    (sliding-window inference calls it once per window).

    Args:
        model (nn.Module): a model holding at least one FAM.

    Raises:
        ValueError: the model has no ``FeatureAlignModule`` (not a FaPN
            model, or an ablation without FAM).
    """

    def __init__(self, model: nn.Module) -> None:
        self.fams = find_feature_align_modules(model)
        if not self.fams:
            raise ValueError(
                f'{type(model).__name__} has no FeatureAlignModule: the '
                'alignment can only be shown for a FaPN model (neck FaPN '
                "with align='fam', RealtimeFaPNHead, UPerFaPNHead or "
                'FaPNPixelDecoder)')
        self._records: Dict[str, AlignmentRecord] = {}
        self._handles: list = []

    @property
    def records(self) -> List[AlignmentRecord]:
        """Records in the order of :attr:`fams` (FAMs that did not run are
        left out)."""
        return [self._records[n] for n, _ in self.fams if n in self._records]

    def _hook(self, name: str, fam: FeatureAlignModule):

        def hook(module, args, output):
            if name in self._records:
                return
            x, guide = args[0], args[1]
            with torch.no_grad():
                offset, mask = module.offset_and_mask(guide)
            self._records[name] = AlignmentRecord(
                name=name,
                before=x.detach(),
                after=F.relu(output.detach()),
                offset=offset.detach(),
                mask=mask.detach(),
                deform_groups=module.deform_groups,
                kernel_size=tuple(module.kernel_size))

        return hook

    def __enter__(self) -> 'AlignmentRecorder':
        self._records.clear()
        for name, fam in self.fams:
            self._handles.append(
                fam.dcn.register_forward_hook(self._hook(name, fam)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def reduce_channels(maps: Sequence[Tensor],
                    method: str = 'pca',
                    joint: bool = False,
                    max_pixels: int = 40000,
                    seed: int = 0) -> List[np.ndarray]:
    """Channel-reduce feature maps (C, H, W) to RGB pictures.

    Args:
        maps: (C, H_i, W_i) tensors with the same C.
        method: ``'pca'``: the first three principal components of the
            pixels (fitted on at most ``max_pixels`` random pixels) as RGB,
            each stretched between its 1st and 99th percentiles, signs fixed
            so the largest loading is positive; ``'mean'``: the channel
            mean in viridis between its 1st and 99th percentiles (the
            channel-averaged maps of the paper's Fig. 6).
        joint: one basis and one stretch for all maps (colours compare
            across maps, but a map with little variance looks flat); by
            default each map is reduced on its own (shows each map's
            structure, as the paper's figure).
        max_pixels, seed: PCA subsampling.

    Returns:
        list of (H_i, W_i, 3) uint8 RGB arrays.
    """
    from .drawing import heatmap
    if method not in ('pca', 'mean'):
        raise ValueError(f"method must be 'pca' or 'mean', got {method!r}")
    if not maps:
        raise ValueError('reduce_channels needs at least one map')
    if any(m.dim() != 3 for m in maps) or \
            len({int(m.shape[0]) for m in maps}) != 1:
        raise ValueError('maps must be (C, H, W) with the same C, got '
                         f'{[tuple(m.shape) for m in maps]}')
    maps = [m.detach().double().cpu() for m in maps]
    if not joint and len(maps) > 1:
        return [
            reduce_channels([m], method, True, max_pixels, seed)[0]
            for m in maps
        ]
    if method == 'mean':
        means = [m.mean(0).numpy() for m in maps]
        joint_px = np.concatenate([x.ravel() for x in means])
        low, high = np.percentile(joint_px, [1, 99])
        return [heatmap(x, low, high) for x in means]
    return _pca_rgb(maps, max_pixels, seed)


def _pca_rgb(maps: List[Tensor], max_pixels: int,
             seed: int) -> List[np.ndarray]:
    from .drawing import normalize_to_uint8
    pixels = torch.cat([m.flatten(1).T for m in maps])  # (P, C)
    gen = torch.Generator().manual_seed(seed)
    if pixels.shape[0] > max_pixels:
        fit = pixels[torch.randperm(pixels.shape[0],
                                    generator=gen)[:max_pixels]]
    else:
        fit = pixels
    center = fit.mean(0)
    _, _, vh = torch.linalg.svd(fit - center, full_matrices=False)
    comps = vh[:3]  # (<=3, C)
    # deterministic signs: the largest-magnitude loading is positive
    idx = comps.abs().argmax(1)
    comps = comps * torch.sign(comps[torch.arange(len(comps)), idx])[:, None]
    proj = (pixels - center) @ comps.T  # (P, <=3)
    if proj.shape[1] < 3:  # fewer than 3 channels: pad with zeros
        proj = torch.cat([proj, proj.new_zeros(len(proj), 3 - proj.shape[1])],
                         1)
    proj = proj.numpy()
    low, high = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    out, start = [], 0
    for m in maps:
        h, w = m.shape[-2:]
        p = proj[start:start + h * w].reshape(h, w, 3)
        start += h * w
        out.append(np.stack([normalize_to_uint8(p[..., c], low[c], high[c])
                             for c in range(3)], -1))
    return out


def displacement_stats(record: AlignmentRecord,
                       index: int = 0,
                       valid: Optional[Tuple[int, int]] = None) -> dict:
    """Summary of a FAM's offsets for image ``index``: mean and max length
    of the mask-weighted mean displacement and the mean length of all raw
    offsets (pixels of the FAM's map), and the mean modulation.  ``valid``:
    (h, w) top-left region to use (the part not covering padding)."""
    flow = mean_displacement(record, index)
    off = record.offset[index].float()
    mask = record.mask[index].float()
    if valid is not None:
        flow = flow[:valid[0], :valid[1]]
        off = off[:, :valid[0], :valid[1]]
        mask = mask[:, :valid[0], :valid[1]]
    g = record.deform_groups
    k = record.kernel_size[0] * record.kernel_size[1]
    h, w = off.shape[-2:]
    raw = off.reshape(g, k, 2, h, w).norm(dim=2)
    length = np.hypot(flow[..., 0], flow[..., 1])
    return dict(
        name=record.name,
        size=[int(h), int(w)],
        mean_displacement_px=float(length.mean()),
        max_displacement_px=float(length.max()),
        mean_raw_offset_px=float(raw.mean()),
        mean_mask=float(mask.mean()))
