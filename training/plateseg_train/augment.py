"""Augmentation on (image, InstanceSet) pairs: square crops, flips, rot90, gray-level jitter, Mosaic.

Geometry is applied to each instance's (box, crop) pair instead of to full-size mask planes,
which keeps a 700-cell shsy5y crop cheap.
"""
from __future__ import annotations

import numpy as np

from .data import InstanceSet, tight


class Sample:
    """A square training view: uint8 image, its instances and the image's class label (1..3)."""

    def __init__(self, image: np.ndarray, instances: InstanceSet, labels: np.ndarray):
        self.image = image
        self.instances = instances
        self.labels = labels  # (N,) int64, one per instance

    @property
    def size(self) -> int:
        return self.image.shape[0]

    def masks(self) -> np.ndarray:
        """(N, S, S) uint8 planes, for Mask R-CNN targets."""
        s = self.size
        out = np.zeros((len(self.instances), s, s), dtype=np.uint8)
        for k, ((x0, y0, x1, y1), crop) in enumerate(zip(self.instances.boxes,
                                                          self.instances.crops)):
            out[k, y0:y1, x0:x1] = crop
        return out

    def semantic(self, boundary: bool = True) -> np.ndarray:
        """Per-pixel classes: 0 background, 1..3 cell type, 4 boundary between touching cells.

        Pixels claimed by two masks, and the 1-px rim of each mask where it touches another
        cell, are the boundary class: without it touching cells fuse into one blob.
        """
        s = self.size
        count = np.zeros((s, s), dtype=np.uint8)
        owner = np.zeros((s, s), dtype=np.int32)
        cls = np.zeros((s, s), dtype=np.int64)
        for k, ((x0, y0, x1, y1), crop) in enumerate(zip(self.instances.boxes,
                                                          self.instances.crops)):
            count[y0:y1, x0:x1] += crop
            region = owner[y0:y1, x0:x1]
            region[crop] = k + 1
            cls[y0:y1, x0:x1][crop] = self.labels[k]
        if boundary:
            touch = count > 1
            o = np.pad(owner, 1)
            centre = o[1:-1, 1:-1]
            for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                nb = o[1 + dy:s + 1 + dy, 1 + dx:s + 1 + dx]
                touch |= (centre > 0) & (nb > 0) & (nb != centre)
            cls[touch] = 4
        return cls


def crop_sample(image: np.ndarray, inst: InstanceSet, label: int, size: int,
                rng: np.random.Generator, x: int | None = None, y: int | None = None,
                min_visible: float = 0.3) -> Sample:
    """A size x size window; cells cut by the window stay if enough of them is visible.

    A cell mostly outside the window is dropped from the targets (a sliver cannot be told
    apart from background), a cell mostly inside keeps its visible part.
    """
    h, w = image.shape
    if x is None:
        x = int(rng.integers(0, w - size + 1)) if w > size else 0
    if y is None:
        y = int(rng.integers(0, h - size + 1)) if h > size else 0
    view = np.zeros((size, size), dtype=np.uint8)
    sub = image[y:y + size, x:x + size]
    view[:sub.shape[0], :sub.shape[1]] = sub
    if sub.shape != (size, size):  # pad with the image's median gray, not black
        fill = np.median(image)
        view[sub.shape[0]:, :] = fill
        view[:, sub.shape[1]:] = fill
    boxes, crops = [], []
    for (x0, y0, x1, y1), crop in zip(inst.boxes, inst.crops):
        ix0, iy0, ix1, iy1 = max(x0, x), max(y0, y), min(x1, x + size), min(y1, y + size)
        if ix0 >= ix1 or iy0 >= iy1:
            continue
        part = crop[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        visible = int(part.sum())
        if visible < 8 or visible < min_visible * crop.sum():
            continue
        t = tight(part, ix0 - x, iy0 - y)
        if t is not None:
            boxes.append(t[0])
            crops.append(t[1])
    out = InstanceSet.from_crops(boxes, crops)
    return Sample(view, out, np.full(len(out), label, dtype=np.int64))


def flip(sample: Sample, horizontal: bool) -> Sample:
    s = sample.size
    b = sample.instances.boxes.copy()
    if horizontal:
        b[:, [0, 2]] = s - sample.instances.boxes[:, [2, 0]]
        crops = [c[:, ::-1] for c in sample.instances.crops]
        image = sample.image[:, ::-1]
    else:
        b[:, [1, 3]] = s - sample.instances.boxes[:, [3, 1]]
        crops = [c[::-1, :] for c in sample.instances.crops]
        image = sample.image[::-1, :]
    return Sample(np.ascontiguousarray(image), InstanceSet(b, crops), sample.labels)


def rot90(sample: Sample) -> Sample:
    """Counter-clockwise quarter turn (np.rot90): new[i, j] = old[j, S-1-i]."""
    s = sample.size
    old = sample.instances.boxes
    b = np.empty_like(old)
    b[:, 0], b[:, 2] = old[:, 1], old[:, 3]
    b[:, 1], b[:, 3] = s - old[:, 2], s - old[:, 0]
    crops = [np.rot90(c) for c in sample.instances.crops]
    return Sample(np.ascontiguousarray(np.rot90(sample.image)), InstanceSet(b, crops),
                  sample.labels)


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and gamma jitter plus faint noise, the plate-to-plate variation."""
    x = image.astype(np.float32) / 255.0
    mean = float(x.mean())
    x = (x - mean) * rng.uniform(0.75, 1.3) + mean + rng.uniform(-0.06, 0.06)
    x = np.clip(x, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    x = x + rng.normal(0.0, rng.uniform(0.0, 0.015), x.shape).astype(np.float32)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def geometric(sample: Sample, rng: np.random.Generator) -> Sample:
    if rng.random() < 0.5:
        sample = flip(sample, horizontal=True)
    if rng.random() < 0.5:
        sample = flip(sample, horizontal=False)
    if rng.random() < 0.5:
        sample = rot90(sample)
    return sample


def augmented_crop(image, inst, label, size, rng) -> Sample:
    s = geometric(crop_sample(image, inst, label, size, rng), rng)
    return Sample(jitter(s.image, rng), s.instances, s.labels)


def mosaic(parts: list[Sample], size: int, rng: np.random.Generator) -> Sample:
    """YOLOX's Mosaic: four views tiled around a random centre, cut to one size x size canvas.

    Each part must be at least size x size; the quadrant it fills takes the part's corner that
    touches the centre, so cells of four images (and types) meet in one view.
    """
    cx = int(rng.uniform(0.3, 0.7) * size)
    cy = int(rng.uniform(0.3, 0.7) * size)
    canvas = np.zeros((size, size), dtype=np.uint8)
    boxes, crops, labels = [], [], []
    quads = [(0, 0, cx, cy), (cx, 0, size, cy), (0, cy, cx, size), (cx, cy, size, size)]
    for q, part in zip(quads, parts):
        qx0, qy0, qx1, qy1 = q
        qw, qh = qx1 - qx0, qy1 - qy0
        if qw <= 0 or qh <= 0:
            continue
        # source window inside the part: the corner adjacent to the mosaic centre
        sx = part.size - qw if qx0 == 0 else 0
        sy = part.size - qh if qy0 == 0 else 0
        canvas[qy0:qy1, qx0:qx1] = part.image[sy:sy + qh, sx:sx + qw]
        piece = crop_sample(part.image, part.instances, 0, max(qw, qh), rng, x=sx, y=sy)
        for (x0, y0, x1, y1), crop, lab in zip(piece.instances.boxes, piece.instances.crops,
                                                part_labels(part, piece)):
            if x0 >= qw or y0 >= qh:
                continue
            crop = crop[:max(0, qh - y0), :max(0, qw - x0)]
            t = tight(crop, x0 + qx0, y0 + qy0)
            if t is None or crop.sum() < 8:
                continue
            boxes.append(t[0])
            crops.append(t[1])
            labels.append(lab)
    return Sample(canvas, InstanceSet.from_crops(boxes, crops), np.asarray(labels, np.int64))


def part_labels(part: Sample, piece: Sample) -> np.ndarray:
    # every part comes from one image, hence one cell type
    label = int(part.labels[0]) if len(part.labels) else 0
    return np.full(len(piece.instances), label, dtype=np.int64)
