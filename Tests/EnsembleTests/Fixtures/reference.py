"""Writes reference.json: numbers the Swift tests compare against, computed independently here.

Run from the repository root: python3 Tests/EnsembleTests/Fixtures/reference.py
- metric: the Sartorius score of demo/truth.csv against a perturbed copy of itself, with IoU
  from numpy and one-to-one matching from scipy's assignment solver (no pycocotools).
- coco: pycocotools' compressed RLE strings of a few demo masks.
"""
import csv, json, collections
import numpy as np
from scipy.optimize import linear_sum_assignment
from pycocotools import mask as cocomask

W, H = 704, 520
rows = list(csv.DictReader(open("demo/truth.csv")))
per = collections.OrderedDict()
for r in rows:
    per.setdefault(r["id"], []).append(r["annotation"])

def decode(ann):
    a = list(map(int, ann.split()))
    flat = np.zeros(W * H, np.uint8)
    for s, l in zip(a[0::2], a[1::2]):
        flat[s - 1:s - 1 + l] = 1
    return flat.reshape(H, W)

def perturb(k, m):
    """Mask k of an image: dropped when k % 7 == 3, else moved right by k % 3 and down by 1
    when k % 5 == 0, pixels pushed past the image edge lost."""
    if k % 7 == 3:
        return None
    dx, dy = k % 3, (1 if k % 5 == 0 else 0)
    out = np.zeros_like(m)
    out[dy:, dx:] = m[:H - dy, :W - dx]
    return out

def score(pred, truth):
    if not pred and not truth:
        return 1.0
    iou = np.zeros((len(pred), len(truth)))
    for i, p in enumerate(pred):
        for j, t in enumerate(truth):
            inter = np.logical_and(p, t).sum()
            union = np.logical_or(p, t).sum()
            iou[i, j] = inter / union if union else 0
    s = []
    for t in np.arange(0.5, 1.0, 0.05):
        match = (iou > t).astype(float)
        if match.size:
            r, c = linear_sum_assignment(-match)
            tp = int(match[r, c].sum())
        else:
            tp = 0
        fp, fn = len(pred) - tp, len(truth) - tp
        s.append(tp / (tp + fp + fn))
    return float(np.mean(s))

images = {}
for image, anns in per.items():
    truth = [decode(a) for a in anns]
    pred = [p for p in (perturb(k, m) for k, m in enumerate(truth)) if p is not None and p.any()]
    images[image] = round(score(pred, truth), 9)

first = per["0323e81d23d9"][:3]
coco = [cocomask.encode(np.asfortranarray(decode(a)))["counts"].decode() for a in first]
json.dump({"metric": {"images": images, "overall": round(float(np.mean(list(images.values()))), 9)},
           "coco": {"image": "0323e81d23d9", "first_masks": coco}},
          open("Tests/EnsembleTests/Fixtures/reference.json", "w"), indent=1, sort_keys=True)
