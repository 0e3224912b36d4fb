"""Region proposals for scene photos (a room with many products in it): where in a photo to look for products.

No detector weights exist here, so proposals are segment-free: square crops at a few scales, overlapping on a
grid, ranked by edge density (the share of strong intensity edges inside the crop), so the crops over bare wall,
floor or ceiling are dropped before anything is encoded. Pure functions of the pixels: no model, no index.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Edges are measured on a copy whose longer side is this long (enough for furniture outlines, cheap: ~2 ms).
EDGE_SIDE = 160
# A border is read on a copy whose longer side is this long: its outer BORDER_STRIP share of the shorter side,
# a pixel counting as plain when no channel is over BORDER_TOLERANCE (of 255) from the border's median colour.
BORDER_SIDE = 64
BORDER_STRIP = 0.08
BORDER_TOLERANCE = 24


@dataclass(frozen=True)
class Box:
    """A rectangle in the original photo's pixels."""

    x: int
    y: int
    w: int
    h: int

    def crop(self, image: Image.Image) -> Image.Image:
        return image.crop((self.x, self.y, self.x + self.w, self.y + self.h))

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


def grid_boxes(width: int, height: int, scales: Sequence[float], overlap: float) -> list[Box]:
    """Square crops whose side is each `scale` times the photo's shorter side, laid on a grid so that neighbours
    overlap by `overlap` of a side, the last row and column flush with the edges (nothing is left unseen)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError("overlap must lie in [0, 1)")
    boxes: list[Box] = []
    for scale in scales:
        side = max(1, round(min(width, height) * scale))
        step = max(1, round(side * (1.0 - overlap)))
        xs, ys = _starts(width, side, step), _starts(height, side, step)
        boxes.extend(Box(x, y, side, side) for y in ys for x in xs)
    return boxes


def _starts(length: int, side: int, step: int) -> list[int]:
    """Crop starts along one axis: every `step`, plus one flush with the far edge."""
    if side >= length:
        return [0]
    n = -(-(length - side) // step)  # steps needed to reach the far edge
    return [round(i * (length - side) / n) for i in range(n + 1)]


def edge_density(image: Image.Image, boxes: Sequence[Box]) -> np.ndarray:
    """For each box, the share of its pixels on a strong edge (gradient above the photo's 75th percentile),
    read from an integral image of a small grey copy: high on furniture, lamps and shelves, low on plain walls."""
    scale = EDGE_SIDE / max(image.size)
    small = image.convert("L").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                      Image.BILINEAR)
    grey = np.asarray(small, dtype=np.float32)
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    strong = (magnitude > np.percentile(magnitude, 75)).astype(np.float64)
    integral = np.pad(strong.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    out = np.empty(len(boxes), dtype=np.float64)
    for i, b in enumerate(boxes):
        x0, y0 = int(b.x * scale), int(b.y * scale)
        x1 = min(grey.shape[1], max(x0 + 1, round((b.x + b.w) * scale)))
        y1 = min(grey.shape[0], max(y0 + 1, round((b.y + b.h) * scale)))
        total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        out[i] = total / ((y1 - y0) * (x1 - x0))
    return out


def plain_border(image: Image.Image) -> float:
    """The share of the photo's border pixels close to the border's median colour: near 1 for a studio shot on a
    plain backdrop (the product is inside the frame), low for a room or a shelf, whose border is other things."""
    small = image.convert("RGB")
    small.thumbnail((BORDER_SIDE, BORDER_SIDE))
    pixels = np.asarray(small, dtype=np.float32)
    strip = max(1, round(min(pixels.shape[:2]) * BORDER_STRIP))
    border = np.concatenate([pixels[:strip].reshape(-1, 3), pixels[-strip:].reshape(-1, 3),
                             pixels[:, :strip].reshape(-1, 3), pixels[:, -strip:].reshape(-1, 3)])
    distance = np.abs(border - np.median(border, axis=0)).max(axis=1)
    return float(np.mean(distance < BORDER_TOLERANCE))


def propose(image: Image.Image, scales: Sequence[float], overlap: float, keep: float,
            limit: int | None = None) -> list[Box]:
    """Grid crops of `image`, of which the `keep` share (at most `limit`) with the most edges survive, in grid
    order."""
    boxes = grid_boxes(image.width, image.height, scales, overlap)
    n = max(1, round(len(boxes) * keep))
    if limit is not None:
        n = min(n, limit)
    if n >= len(boxes):
        return boxes
    density = edge_density(image, boxes)
    chosen = np.sort(np.argsort(-density, kind="stable")[:n])
    return [boxes[i] for i in chosen]
