"""Pixel-exact figure building blocks for the demo and the analysis tools.

Figures are composed with numpy and OpenCV (no matplotlib layout), so that
a figure's size follows from its panels alone: a panel is an (H, W, 3)
uint8 RGB array, :func:`titled` adds a :data:`TITLE_HEIGHT`-pixel caption
strip on top, :func:`grid` joins panels with :data:`GAP`-pixel gaps.  Label
maps are upscaled with nearest neighbours so no false colours appear at
class boundaries.
"""
from typing import List, Optional, Sequence

import cv2
import numpy as np

TITLE_HEIGHT = 18
GAP = 4
IGNORE_COLOR = (0, 0, 0)


def check_rgb(image: np.ndarray, name: str = 'image') -> np.ndarray:
    """Return ``image`` as (H, W, 3) uint8, or raise a clear error."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{name} must be a numpy array, got '
                        f'{type(image).__name__}')
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{name} must be (H, W, 3), got shape {image.shape}')
    if image.dtype != np.uint8:
        raise TypeError(f'{name} must be uint8, got {image.dtype}')
    return image


def make_palette(num_classes: int,
                 palette: Optional[Sequence[Sequence[int]]] = None
                 ) -> np.ndarray:
    """(num_classes, 3) uint8 colours: ``palette`` (e.g. a dataset's
    ``dataset_meta['palette']``) where it has enough entries, else a fixed
    generated one."""
    if palette is not None and len(palette) >= num_classes:
        return np.asarray(palette, dtype=np.uint8)[:num_classes]
    rng = np.random.default_rng(2021)
    return rng.integers(40, 256, size=(num_classes, 3), dtype=np.uint8)


def colorize(labels: np.ndarray,
             palette: np.ndarray,
             ignore_index: int = 255) -> np.ndarray:
    """(H, W) integer label map -> (H, W, 3) RGB; ``ignore_index`` and
    labels outside the palette are black."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f'labels must be (H, W), got shape {labels.shape}')
    out = np.zeros(labels.shape + (3, ), np.uint8)
    valid = (labels != ignore_index) & (labels >= 0) & (labels < len(palette))
    out[valid] = palette[labels[valid]]
    return out


def resize_to(image: np.ndarray, height: int, width: int,
              nearest: bool = False) -> np.ndarray:
    """Resize an (H, W[, C]) array to (height, width)."""
    if image.shape[:2] == (height, width):
        return image
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def titled(panel: np.ndarray, title: str) -> np.ndarray:
    """``panel`` with a black caption strip of :data:`TITLE_HEIGHT` pixels
    on top (the text is cut at the panel's width)."""
    panel = check_rgb(panel, 'panel')
    strip = np.zeros((TITLE_HEIGHT, panel.shape[1], 3), np.uint8)
    cv2.putText(strip, title, (2, TITLE_HEIGHT - 5),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def grid(rows: Sequence[Sequence[np.ndarray]],
         gap: int = GAP,
         background: int = 255) -> np.ndarray:
    """Join panels row by row with ``gap`` pixels between them.

    All panels of a row must have the same height; rows are left-aligned
    and padded to the widest one.  Size: ``sum(row heights) + gap * (rows -
    1)`` by ``max(sum(widths) + gap * (panels - 1))``.
    """
    if not rows or any(not r for r in rows):
        raise ValueError('grid needs at least one panel in every row')
    joined = []
    for r, row in enumerate(rows):
        heights = {p.shape[0] for p in row}
        if len(heights) != 1:
            raise ValueError(f'grid row {r}: panels differ in height '
                             f'{sorted(heights)}')
        parts: List[np.ndarray] = []
        for i, p in enumerate(row):
            if i:
                parts.append(np.full((p.shape[0], gap, 3), background,
                                     np.uint8))
            parts.append(check_rgb(p, f'grid panel [{r}][{i}]'))
        joined.append(np.concatenate(parts, axis=1))
    width = max(j.shape[1] for j in joined)
    out: List[np.ndarray] = []
    for i, j in enumerate(joined):
        if i:
            out.append(np.full((gap, width, 3), background, np.uint8))
        pad = width - j.shape[1]
        if pad:
            j = np.concatenate(
                [j, np.full((j.shape[0], pad, 3), background, np.uint8)], 1)
        out.append(j)
    return np.concatenate(out, axis=0)


def boundary_mask(labels: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour has another valid
    label (a 1-pixel outline of the label map)."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, bool)
    valid = labels != ignore_index
    dy = (labels[1:] != labels[:-1]) & valid[1:] & valid[:-1]
    dx = (labels[:, 1:] != labels[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    edge[1:] |= dy
    edge[:, 1:] |= dx
    return edge


def normalize_to_uint8(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly to [0, 255] (clipped)."""
    scale = 255.0 / max(high - low, 1e-12)
    return np.clip((x - low) * scale, 0, 255).astype(np.uint8)


def heatmap(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H, W) float -> (H, W, 3) RGB with OpenCV's viridis colour map."""
    gray = normalize_to_uint8(x, low, high)
    return cv2.applyColorMap(gray, cv2.COLORMAP_VIRIDIS)[..., ::-1].copy()


def flow_to_color(flow: np.ndarray, max_magnitude: Optional[float] = None
                  ) -> np.ndarray:
    """(H, W, 2) displacement (dy, dx) -> (H, W, 3) RGB, the usual optical
    flow colour wheel: hue = direction, saturation = magnitude / max
    (``max_magnitude``, default the largest in ``flow``), value 1.  Zero
    displacement is white."""
    flow = np.asarray(flow, np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f'flow must be (H, W, 2), got shape {flow.shape}')
    dy, dx = flow[..., 0], flow[..., 1]
    mag = np.hypot(dy, dx)
    if max_magnitude is None:
        max_magnitude = float(mag.max())
    ang = (np.degrees(np.arctan2(dy, dx)) % 360.0) / 2.0  # OpenCV hue 0..180
    hsv = np.empty(flow.shape[:2] + (3, ), np.uint8)
    hsv[..., 0] = ang.astype(np.uint8)
    hsv[..., 1] = normalize_to_uint8(mag, 0.0, max(max_magnitude, 1e-12))
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def draw_arrows(background: np.ndarray,
                flow: np.ndarray,
                step: int = 8,
                scale: float = 1.0,
                color=(255, 0, 0)) -> np.ndarray:
    """Arrows of ``flow`` (h, w, 2) (dy, dx), in pixels of the ``flow``
    grid, drawn on ``background`` (H, W, 3) every ``step`` background
    pixels; an arrow is the displacement scaled to background pixels
    times ``scale``."""
    out = check_rgb(background, 'background').copy()
    h_img, w_img = out.shape[:2]
    h, w = flow.shape[:2]
    sy, sx = h_img / h, w_img / w
    for y in range(step // 2, h_img, step):
        for x in range(step // 2, w_img, step):
            fy, fx = flow[min(int(y / sy), h - 1), min(int(x / sx), w - 1)]
            end = (int(round(x + fx * sx * scale)),
                   int(round(y + fy * sy * scale)))
            cv2.arrowedLine(out, (x, y), end, color, 1, cv2.LINE_AA,
                            tipLength=0.3)
    return out


def write_png(path: str, image: np.ndarray) -> str:
    """Write an RGB uint8 image as PNG (creates nothing else); returns the
    path.  Raises ``OSError`` if OpenCV cannot write it."""
    image = check_rgb(image)
    # maximum (lossless) compression: the figures hold noisy photos
    if not cv2.imwrite(path, np.ascontiguousarray(image[..., ::-1]),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f'cannot write PNG {path!r}')
    return path


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as (H, W, 3) RGB uint8; ``FileNotFoundError`` if
    it does not exist or cannot be decoded."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'cannot read image {path!r} (missing or '
                                'not an image)')
    return image[..., ::-1].copy()
