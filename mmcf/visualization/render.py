"""Drawing cluster assignment maps (Fig. 3) as RGB ``uint8`` arrays.

Pure numpy + OpenCV (a dependency of mmcv); no model code. A *panel* is one
map drawn three ways, side by side under a title line::

    +--------------------------------------------------+
    | title                                            |
    +----------------+---+----------------+---+--------+
    |     image      |gap| cluster map    |gap| overlay|
    +----------------+---+----------------+---+--------+

each of the three tiles is the image scaled so that its longer side is
``panel_size`` pixels; every map pixel is coloured by the index of its
arg-max center. A *contact sheet* stacks panels vertically.
"""
from __future__ import annotations

import colorsys
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

GAP = 4
TITLE_HEIGHT = 18
BACKGROUND = 255


def cluster_palette(num_colors: int, seed: int = 0) -> np.ndarray:
    """``(num_colors, 3)`` uint8 RGB colours, distinct for neighbouring indices.

    Hues step by the golden ratio (so consecutive indices differ strongly);
    saturation and value cycle over three levels to separate colours of
    close hue when there are many centers.
    """
    if num_colors < 1:
        raise ValueError(f'num_colors must be >= 1, got {num_colors}')
    golden = 0.618033988749895
    colors = []
    for i in range(num_colors):
        hue = (seed * 0.1 + i * golden) % 1.0
        sat = (0.95, 0.65, 0.8)[i % 3]
        val = (0.95, 0.85, 0.65)[(i // 3) % 3]
        colors.append(colorsys.hsv_to_rgb(hue, sat, val))
    return (np.asarray(colors) * 255).round().astype(np.uint8)


def colorize_labels(labels: np.ndarray, palette: Optional[np.ndarray] = None) -> np.ndarray:
    """An ``(h, w)`` integer map as an ``(h, w, 3)`` uint8 RGB image."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f'labels must be an (h, w) map, got shape {labels.shape}')
    if labels.size and labels.min() < 0:
        raise ValueError('labels must be non-negative center indices')
    needed = int(labels.max()) + 1 if labels.size else 1
    if palette is None:
        palette = cluster_palette(needed)
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if len(palette) < needed:  # a class palette shorter than the centers
        palette = np.concatenate([palette, cluster_palette(needed)[len(palette):]])
    return palette[labels]


def crop_to_valid(labels: np.ndarray, valid: Tuple[float, float]) -> np.ndarray:
    """Keep the part of a map that covers the image, not the batch padding.

    ``valid`` is (image height / padded height, image width / padded width);
    a map cell is kept when any part of it covers the image.
    """
    h, w = labels.shape
    keep_h = min(h, max(1, int(np.ceil(h * valid[0] - 1e-6))))
    keep_w = min(w, max(1, int(np.ceil(w * valid[1] - 1e-6))))
    return labels[:keep_h, :keep_w]


def tile_size(image_hw: Tuple[int, int], panel_size: Optional[int]) -> Tuple[int, int]:
    """(height, width) of one tile: the image scaled to ``panel_size`` on
    its longer side (``None`` keeps the image size)."""
    h, w = image_hw
    if panel_size is None:
        return h, w
    scale = panel_size / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def _put_title(canvas: np.ndarray, title: str) -> None:
    """Write ``title`` in the top band, shrinking the font to fit the width."""
    if not title:
        return
    width = canvas.shape[1] - 4
    scale = 0.45
    while scale > 0.25:
        (tw, _), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        if tw <= width:
            break
        scale -= 0.05
    cv2.putText(canvas, title, (2, TITLE_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), 1, cv2.LINE_AA)


def render_assignment_panel(image: np.ndarray,
                            labels: np.ndarray,
                            title: str = '',
                            palette: Optional[np.ndarray] = None,
                            alpha: float = 0.5,
                            panel_size: Optional[int] = 256,
                            valid: Tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Image, cluster map and overlay side by side under a title.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        labels: ``(h, w)`` center indices of one image (any coarser size;
            upsampled with nearest neighbours, as Fig. 3's 7x7 grid).
        title: one line drawn above the tiles.
        palette: ``(K, 3)`` uint8 RGB colours per center (default
            :func:`cluster_palette`).
        alpha: weight of the map in the overlay.
        panel_size: longer side of each tile in pixels (``None``: image size).
        valid: fraction of the map that covers the image (the rest is batch
            padding), see :func:`crop_to_valid`.

    Returns:
        ``(TITLE_HEIGHT + th, 3 * tw + 2 * GAP, 3)`` uint8 RGB, with
        ``(th, tw)`` = :func:`tile_size`.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'image must be an (H, W, 3) uint8 array, got {image.shape} '
                         f'{image.dtype}')
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    th, tw = tile_size(image.shape[:2], panel_size)
    tile = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA
                      if th < image.shape[0] else cv2.INTER_LINEAR)
    color = colorize_labels(crop_to_valid(np.asarray(labels), valid), palette)
    color = cv2.resize(color, (tw, th), interpolation=cv2.INTER_NEAREST)
    overlay = (tile.astype(np.float32) * (1 - alpha) +
               color.astype(np.float32) * alpha).round().astype(np.uint8)
    canvas = np.full((TITLE_HEIGHT + th, 3 * tw + 2 * GAP, 3), BACKGROUND, np.uint8)
    for i, part in enumerate((tile, color, overlay)):
        x = i * (tw + GAP)
        canvas[TITLE_HEIGHT:, x:x + tw] = part
    _put_title(canvas, title)
    return canvas


def contact_sheet(panels: Sequence[np.ndarray], title: str = '') -> np.ndarray:
    """Stack panels vertically (left-aligned, ``GAP`` apart) under a title."""
    if not panels:
        raise ValueError('contact_sheet needs at least one panel')
    width = max(p.shape[1] for p in panels)
    rows: List[np.ndarray] = []
    if title:
        band = np.full((TITLE_HEIGHT, width, 3), BACKGROUND, np.uint8)
        _put_title(band, title)
        rows.append(band)
    for i, panel in enumerate(panels):
        if i or title:
            rows.append(np.full((GAP, width, 3), BACKGROUND, np.uint8))
        row = np.full((panel.shape[0], width, 3), BACKGROUND, np.uint8)
        row[:, :panel.shape[1]] = panel
        rows.append(row)
    return np.concatenate(rows, axis=0)
