"""The data preprocessor of an mmdet/mmseg model as an exportable module.

At test time mmdet's ``DetDataPreProcessor`` and mmseg's
``SegDataPreProcessor`` turn the pipeline's uint8 image (3, H, W), in the
channel order it was loaded in (mmcv's ``LoadImageFromFile``: BGR), into
the network input: optional BGR -> RGB, ``(x - mean) / std``, then
right/bottom padding with ``pad_value`` to a multiple of the size divisor
(mmdet: ``pad_size_divisor``; mmseg: ``test_cfg=dict(size_divisor=...)``
or a fixed ``test_cfg=dict(size=...)``; no ``test_cfg``: no padding).
:class:`ImagePreprocessor` does the same on a uint8 batch (N, H, W, 3) with
plain tensor operations, so that ``torch.onnx.export`` puts it in the
graph.  The image size is fixed at export, so the padding is too.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn


def preprocess_settings(preprocessor: nn.Module) -> Dict:
    """Test-time settings of a built mmdet/mmseg data preprocessor.

    Returns:
        dict: ``bgr_to_rgb`` (bool), ``mean`` / ``std`` (3 floats, or None
        without normalisation), ``size_divisor`` (int or None), ``size``
        ((h, w) or None: fixed padding size), ``pad_value`` (float).

    Raises:
        ValueError: a preprocessor of another kind (named).
    """
    normalize = bool(getattr(preprocessor, '_enable_normalize', False))
    mean = std = None
    if normalize:
        mean = [float(v) for v in preprocessor.mean.flatten()]
        std = [float(v) for v in preprocessor.std.flatten()]
    if hasattr(preprocessor, 'channel_conversion'):  # mmseg
        test_cfg = getattr(preprocessor, 'test_cfg', None) or {}
        size = test_cfg.get('size')
        return dict(
            bgr_to_rgb=bool(preprocessor.channel_conversion),
            mean=mean,
            std=std,
            size_divisor=test_cfg.get('size_divisor') if size is None
            else None,
            size=tuple(size) if size is not None else None,
            pad_value=float(preprocessor.pad_val))
    if hasattr(preprocessor, '_channel_conversion'):  # mmengine / mmdet
        return dict(
            bgr_to_rgb=bool(preprocessor._channel_conversion),
            mean=mean,
            std=std,
            size_divisor=int(preprocessor.pad_size_divisor),
            size=None,
            pad_value=float(preprocessor.pad_value))
    raise ValueError(f'cannot put a {type(preprocessor).__name__} in the '
                     'graph: only mmengine/mmdet ImgDataPreprocessor-like '
                     'and mmseg SegDataPreProcessor are supported')


def padded_shape(shape: Tuple[int, int], size_divisor: Optional[int],
                 size: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """The (h, w) the preprocessor pads an image of ``shape`` to."""
    h, w = shape
    if size is not None:
        return max(h, int(size[0])), max(w, int(size[1]))
    if size_divisor and size_divisor > 1:
        d = int(size_divisor)
        return (h + d - 1) // d * d, (w + d - 1) // d * d
    return h, w


class ImagePreprocessor(nn.Module):
    """uint8 images (N, H, W, 3) -> the network's float input (N, 3, Hp, Wp).

    Args:
        shape (tuple[int, int]): (H, W) of the images (fixed: it sets the
            padding).
        bgr_to_rgb (bool): reverse the channel order (the image is given
            in the order it was loaded, BGR for mmcv).
        mean, std (sequence[float] | None): normalisation per channel of
            the converted image; None: none.
        size_divisor (int | None): pad to a multiple of it.
        size (tuple[int, int] | None): pad to this fixed (h, w) instead.
        pad_value (float): value of the padded pixels (after
            normalisation, as mmdet and mmseg pad).
    """

    def __init__(self,
                 shape: Tuple[int, int],
                 bgr_to_rgb: bool,
                 mean: Optional[Sequence[float]],
                 std: Optional[Sequence[float]],
                 size_divisor: Optional[int] = None,
                 size: Optional[Sequence[int]] = None,
                 pad_value: float = 0.0) -> None:
        super().__init__()
        self.shape = tuple(int(v) for v in shape)
        self.bgr_to_rgb = bgr_to_rgb
        self.normalize = mean is not None
        if self.normalize:
            self.register_buffer(
                'mean', torch.tensor(mean, dtype=torch.float32).view(
                    1, -1, 1, 1), persistent=False)
            self.register_buffer(
                'std', torch.tensor(std, dtype=torch.float32).view(
                    1, -1, 1, 1), persistent=False)
        self.pad_shape = padded_shape(self.shape, size_divisor, size)
        self.pad_value = float(pad_value)

    @property
    def padding(self) -> Tuple[int, int, int, int]:
        """(left, right, top, bottom), as mmseg's ``img_padding_size``."""
        return (0, self.pad_shape[1] - self.shape[1], 0,
                self.pad_shape[0] - self.shape[0])

    def forward(self, image: Tensor) -> Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        if self.bgr_to_rgb:
            x = torch.flip(x, dims=[1])
        if self.normalize:
            x = (x - self.mean) / self.std
        left, right, top, bottom = self.padding
        if right or bottom:
            x = nn.functional.pad(
                x, (left, right, top, bottom), value=self.pad_value)
        return x

    @classmethod
    def from_preprocessor(cls, preprocessor: nn.Module,
                          shape: Tuple[int, int]) -> 'ImagePreprocessor':
        """The module doing what ``preprocessor`` does at test time."""
        return cls(shape, **preprocess_settings(preprocessor))
