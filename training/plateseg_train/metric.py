"""The Sartorius competition metric and the non-overlapping instance map it requires."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .data import CLASSES, InstanceSet

THRESHOLDS = np.arange(0.5, 0.951, 0.05)


def paint(masks: np.ndarray, scores: np.ndarray, min_area: int = 20,
          min_kept: float = 0.5) -> np.ndarray:
    """Instance map (0 background, k+1 instance k) from boolean masks, best score first.

    A later mask only gets pixels nobody holds yet; if that leaves it less than `min_kept` of
    itself (or fewer than `min_area` px) it is a duplicate of a better one and is dropped.
    """
    h, w = masks.shape[1:] if masks.ndim == 3 else (0, 0)
    out = np.zeros((h, w), dtype=np.int32)
    next_id = 1
    for k in np.argsort(-scores, kind="stable"):
        m = masks[k]
        area = int(m.sum())
        if area < min_area:
            continue
        free = m & (out == 0)
        kept = int(free.sum())
        if kept < min_area or kept < min_kept * area:
            continue
        out[free] = next_id
        next_id += 1
    return out


def iou_matrix(truth: InstanceSet, instance_map: np.ndarray) -> np.ndarray:
    n_pred = int(instance_map.max())
    pred_area = np.bincount(instance_map.ravel(), minlength=n_pred + 1)[1:]
    iou = np.zeros((len(truth), n_pred), dtype=np.float64)
    for k, ((x0, y0, x1, y1), crop) in enumerate(zip(truth.boxes, truth.crops)):
        inside = instance_map[y0:y1, x0:x1][crop]
        inter = np.bincount(inside, minlength=n_pred + 1)[1:]
        union = crop.sum() + pred_area - inter
        iou[k] = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
    return iou


def image_score(truth: InstanceSet, instance_map: np.ndarray) -> float:
    """Mean over IoU thresholds of TP / (TP + FP + FN), one-to-one matches with IoU > t."""
    return score_from_iou(iou_matrix(truth, instance_map))


def matches(iou: np.ndarray) -> np.ndarray:
    """True positives at each of THRESHOLDS: one-to-one matches with IoU > t. Above IoU 0.5 a
    match is unique, so greedy matching by IoU is exact."""
    ti, pi = np.nonzero(iou > THRESHOLDS[0])
    order = np.argsort(-iou[ti, pi], kind="stable")
    ti, pi, vals = ti[order], pi[order], iou[ti, pi][order]
    out = np.zeros(len(THRESHOLDS), dtype=np.int64)
    for k, t in enumerate(THRESHOLDS):
        used_t, used_p = set(), set()
        for a, b, v in zip(ti, pi, vals):
            if v <= t:
                break
            if a in used_t or b in used_p:
                continue
            used_t.add(a)
            used_p.add(b)
            out[k] += 1
    return out


def score_from_iou(iou: np.ndarray) -> float:
    """The Sartorius score of one image from its truth x prediction IoU matrix."""
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return 1.0
    tp = matches(iou)
    return float(np.mean(tp / (n_true + n_pred - tp)))


class ScoreBoard:
    """Per-image scores, reported overall and per cell type."""

    def __init__(self):
        self.by_type: dict[str, list[float]] = defaultdict(list)

    def add(self, cell_type: str, score: float) -> None:
        self.by_type[cell_type].append(score)

    def summary(self) -> dict[str, float]:
        every = [s for v in self.by_type.values() for s in v]
        out = {"all": float(np.mean(every)) if every else float("nan"), "images": len(every)}
        for c in CLASSES:
            if self.by_type.get(c):
                out[c] = float(np.mean(self.by_type[c]))
        return out

    def line(self) -> str:
        s = self.summary()
        parts = [f"mAP {s['all']:.4f} ({s['images']} images)"]
        parts += [f"{c} {s[c]:.4f}" for c in CLASSES if c in s]
        return ", ".join(parts)


class MatchTally:
    """True positives, false positives and misses per cell type at each IoU threshold, summed
    over images: where a score is lost (cells not found, or outlines not tight enough)."""

    def __init__(self):
        self.counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((len(THRESHOLDS), 3), np.int64))

    def add(self, cell_type: str, truth: InstanceSet, instance_map: np.ndarray) -> None:
        iou = iou_matrix(truth, instance_map)
        tp = matches(iou)
        self.counts[cell_type] += np.stack([tp, iou.shape[1] - tp, iou.shape[0] - tp], axis=1)

    def lines(self) -> list[str]:
        out = ["type    IoU  found  false  missed  recall  precision"]
        for c in CLASSES:
            for t, (tp, fp, fn) in zip(THRESHOLDS, self.counts.get(c, [])):
                out.append(f"{c:7s} {t:.2f} {tp:6d} {fp:6d} {fn:7d}  {tp / max(1, tp + fn):6.3f}"
                           f"  {tp / max(1, tp + fp):9.3f}")
        return out
