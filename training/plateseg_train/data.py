"""The Sartorius annotations: decoding, repair, splits, sampling weights and the on-disk cache.

Masks are kept as (box, cropped bitmap) pairs rather than full 704x520 planes: a shsy5y image
holds up to ~800 cells, and full planes would cost ~300 MB for it alone.
"""
from __future__ import annotations

import csv
import os
import pickle
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

CLASSES = ("shsy5y", "astro", "cort")  # label k+1 is CLASSES[k]; 0 is background
WIDTH, HEIGHT = 704, 520

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNS_DIR = REPO_ROOT / "training" / "runs"
CACHE_VERSION = 1


def data_root() -> Path:
    """The shared data folder; PLATESEG_DATA overrides the sibling-of-the-repository default."""
    env = os.environ.get("PLATESEG_DATA")
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "sartorius"
    if not (root / "images.csv").is_file():
        raise FileNotFoundError(
            f"{root / 'images.csv'} not found: set PLATESEG_DATA to the folder holding "
            "images.csv, images/ and annotations/ of the Sartorius data")
    return root


# ---------------------------------------------------------------------------------------------
# Instance sets


@dataclass
class InstanceSet:
    """Instances of one image: boxes as [x0, y0, x1, y1) ints and each mask cropped to its box."""

    boxes: np.ndarray  # (N, 4) int32
    crops: list[np.ndarray] = field(default_factory=list)  # N bool arrays (y1-y0, x1-x0)

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def areas(self) -> np.ndarray:
        return np.array([int(c.sum()) for c in self.crops], dtype=np.int64)

    def full(self, index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
        x0, y0, x1, y1 = self.boxes[index]
        plane = np.zeros((height, width), dtype=bool)
        plane[y0:y1, x0:x1] = self.crops[index]
        return plane

    @staticmethod
    def from_crops(boxes: list, crops: list) -> "InstanceSet":
        return InstanceSet(np.asarray(boxes, dtype=np.int32).reshape(-1, 4), list(crops))


def tight(mask: np.ndarray, x0: int = 0, y0: int = 0):
    """Shrink a bitmap to its bounding box; returns (box, crop) or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return (x0 + c0, y0 + r0, x0 + c1, y0 + r1), mask[r0:r1, c0:c1]


# ---------------------------------------------------------------------------------------------
# Kaggle RLE


def decode_rle(text: str, height: int = HEIGHT, width: int = WIDTH, where: str = "annotation"):
    """Decode Kaggle RLE (1-based starts, row-major) to (box, crop); runs past the image are clipped.

    Returns None for an empty mask. Raises ValueError naming `where` for malformed text.
    """
    try:
        nums = np.array(text.split(), dtype=np.int64)
    except ValueError as exc:
        raise ValueError(f"{where}: RLE holds a non-integer token ({exc}); expected "
                         "'start length' pairs") from None
    if nums.size % 2:
        raise ValueError(f"{where}: RLE has {nums.size} numbers, expected start/length pairs")
    starts, lengths = nums[0::2] - 1, nums[1::2]
    if nums.size and (starts.min() < 0 or lengths.min() < 0):
        raise ValueError(f"{where}: RLE starts are 1-based and lengths non-negative")
    total = height * width
    ends = np.minimum(starts + lengths, total)
    keep = starts < ends
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return None
    row0 = int(starts.min()) // width
    row1 = (int(ends.max()) - 1) // width + 1
    base = row0 * width
    edges = np.zeros((row1 - row0) * width + 1, dtype=np.int32)
    np.add.at(edges, starts - base, 1)
    np.add.at(edges, ends - base, -1)
    band = (np.cumsum(edges[:-1]) > 0).reshape(row1 - row0, width)
    return tight(band, 0, row0)


def encode_rle(mask: np.ndarray) -> str:
    """Kaggle RLE of a full bitmap (used by tests and pseudo-label export)."""
    flat = np.concatenate([[0], mask.reshape(-1).astype(np.int8), [0]])
    change = np.flatnonzero(flat[1:] != flat[:-1])
    starts, ends = change[0::2], change[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts, ends))


# ---------------------------------------------------------------------------------------------
# Repair


@dataclass
class RepairPolicy:
    min_area: int = 20  # px; smaller masks are annotation specks, not cells
    duplicate_overlap: float = 0.7  # intersection / smaller area above which two masks are one cell


def repair(instances: InstanceSet, policy: RepairPolicy, stats: Counter) -> InstanceSet:
    """Fill holes, keep each mask's largest piece, drop specks and duplicated masks.

    Clipping to the image already happened in decode_rle. Of two masks that overlap by more than
    `duplicate_overlap` of the smaller one, the smaller is dropped: such pairs are repeated
    annotation passes over one cell, and keeping both teaches the models to emit duplicates.
    """
    boxes, crops = [], []
    for box, crop in zip(instances.boxes, instances.crops):
        filled = ndimage.binary_fill_holes(crop)
        if filled.sum() != crop.sum():
            stats["holes_filled"] += 1
        labels, count = ndimage.label(filled)
        if count > 1:
            sizes = np.bincount(labels.ravel())[1:]
            filled = labels == (int(np.argmax(sizes)) + 1)
            stats["fragments_dropped"] += count - 1
        if filled.sum() < policy.min_area:
            stats["tiny_dropped"] += 1
            continue
        t = tight(filled, int(box[0]), int(box[1]))
        boxes.append(t[0])
        crops.append(t[1])
    if not crops:
        return InstanceSet.from_crops([], [])
    b = np.asarray(boxes, dtype=np.int32)
    areas = np.array([c.sum() for c in crops])
    order = np.argsort(-areas, kind="stable")
    kept: list[int] = []
    for i in order:
        duplicate = False
        for j in kept:
            ix0, iy0 = max(b[i, 0], b[j, 0]), max(b[i, 1], b[j, 1])
            ix1, iy1 = min(b[i, 2], b[j, 2]), min(b[i, 3], b[j, 3])
            if ix0 >= ix1 or iy0 >= iy1:
                continue
            a = crops[i][iy0 - b[i, 1]:iy1 - b[i, 1], ix0 - b[i, 0]:ix1 - b[i, 0]]
            c = crops[j][iy0 - b[j, 1]:iy1 - b[j, 1], ix0 - b[j, 0]:ix1 - b[j, 0]]
            inter = int(np.logical_and(a, c).sum())
            if inter > policy.duplicate_overlap * min(areas[i], areas[j]):
                duplicate = True
                break
        if duplicate:
            stats["duplicates_dropped"] += 1
        else:
            kept.append(int(i))
    kept.sort()  # back to source order
    return InstanceSet.from_crops([boxes[k] for k in kept], [crops[k] for k in kept])


# ---------------------------------------------------------------------------------------------
# The data set


@dataclass
class Record:
    id: str
    cell_type: str
    split: str
    known_issue: str
    raw: InstanceSet | None  # as annotated (the scoring truth)
    clean: InstanceSet | None  # repaired (the training target)

    @property
    def label(self) -> int:
        return CLASSES.index(self.cell_type) + 1


def read_image(record_id: str, root: Path | None = None) -> np.ndarray:
    root = root or data_root()
    path = root / "images" / "train" / f"{record_id}.png"
    with Image.open(path) as img:
        if img.mode != "L" or img.size != (WIDTH, HEIGHT):
            raise ValueError(f"{path}: expected 8-bit gray {WIDTH}x{HEIGHT}, got {img.mode} "
                             f"{img.size[0]}x{img.size[1]}")
        return np.asarray(img, dtype=np.uint8).copy()


def build_records(root: Path, policy: RepairPolicy, log=print) -> tuple[list[Record], Counter]:
    rows = list(csv.DictReader(open(root / "images.csv", newline="")))
    by_id: dict[str, list] = {}
    ann_path = root / "annotations" / "train_annotations.csv"
    with open(ann_path, newline="") as f:
        for line_no, row in enumerate(csv.DictReader(f), start=2):
            w, h = int(row["width"]), int(row["height"])
            if (w, h) != (WIDTH, HEIGHT):
                raise ValueError(f"{ann_path}:{line_no}: image {row['id']} is {w}x{h}, "
                                 f"expected {WIDTH}x{HEIGHT}")
            decoded = decode_rle(row["annotation"], h, w, where=f"{ann_path}:{line_no}")
            if decoded is not None:
                by_id.setdefault(row["id"], []).append(decoded)
    stats: Counter = Counter()
    records = []
    for row in rows:
        if row["split"] not in ("train", "val"):
            continue
        pairs = by_id.get(row["id"], [])
        raw = InstanceSet.from_crops([p[0] for p in pairs], [p[1] for p in pairs])
        stats["cells_raw"] += len(raw)
        clean = repair(raw, policy, stats)
        stats["cells_clean"] += len(clean)
        records.append(Record(row["id"], row["cell_type"], row["split"], row["known_issue"],
                              raw, clean))
    return records, stats


def load_records(policy: RepairPolicy | None = None, log=print) -> list[Record]:
    """All train/val records, decoded once and cached under training/runs/cache/."""
    policy = policy or RepairPolicy()
    root = data_root()
    cache = RUNS_DIR / "cache" / (f"annotations-v{CACHE_VERSION}-a{policy.min_area}"
                                  f"-d{policy.duplicate_overlap}.pkl")
    if cache.is_file():
        with open(cache, "rb") as f:
            return pickle.load(f)
    t0 = time.time()
    records, stats = build_records(root, policy, log)
    log(f"decoded and repaired annotations in {time.time() - t0:.0f}s: {dict(stats)}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(records, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(cache)
    return records


def split(records: list[Record], name: str) -> list[Record]:
    """Training images skip the flagged ones (incomplete / duplicated passes); val keeps all 60."""
    if name == "train":
        return [r for r in records if r.split == "train" and not r.known_issue]
    if name == "val":
        return [r for r in records if r.split == "val"]
    if name == "eval_mini":
        root = data_root()
        mini = {row["id"] for row in csv.DictReader(open(root / "images.csv", newline=""))
                if row["eval_mini"] == "1"}
        return [r for r in records if r.id in mini]
    raise ValueError(f"unknown split {name!r}: use train, val or eval_mini")


# ---------------------------------------------------------------------------------------------
# Pseudo-labels


PSEUDO_SPLIT = "pseudo"


def load_pseudo_labels(cells_csv: Path, min_score: float = 0.5, root: Path | None = None,
                       policy: RepairPolicy | None = None) -> list[Record]:
    """Training records for the `split=unlabeled` images from plateseg's cell export
    (`plateseg export --format csv`: image, cell_type, score, rle as COCO RLE).

    Each image's cell type is known from images.csv (the unlabeled images are all SH-SY5Y), so
    every kept cell takes it whatever the ensemble voted. Rows of any other split are refused:
    pseudo-labels on val images would train on the images the scores are reported on.
    """
    from pycocotools import mask as coco_mask  # training-only dependency, as torch

    root = root or data_root()
    policy = policy or RepairPolicy()
    image_rows = {row["id"]: row for row in csv.DictReader(open(root / "images.csv", newline=""))}
    by_id: dict[str, list] = {}
    with open(cells_csv, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"image", "score", "rle"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{cells_csv}: no column {', '.join(sorted(missing))}; expected the "
                             "CSV of `plateseg export --format csv`")
        for line_no, row in enumerate(reader, start=2):
            image_id = Path(row["image"]).stem
            info = image_rows.get(image_id)
            if info is None or info["split"] != "unlabeled":
                found = "not in images.csv" if info is None else f"split={info['split']}"
                raise ValueError(f"{cells_csv}:{line_no}: image {image_id} is {found}; "
                                 "pseudo-labels are for split=unlabeled images only")
            by_id.setdefault(image_id, [])
            try:
                score = float(row["score"])
            except ValueError:
                raise ValueError(f"{cells_csv}:{line_no}: score {row['score']!r} is not a number") from None
            if score < min_score:
                continue
            rle = {"size": [HEIGHT, WIDTH], "counts": row["rle"].encode()}
            try:
                with warnings.catch_warnings():  # pycocotools 2.0 against numpy 2: harmless
                    warnings.simplefilter("ignore", DeprecationWarning)
                    bitmap = coco_mask.decode(rle).astype(bool)
            except Exception as exc:  # pycocotools raises bare Exceptions on bad strings
                raise ValueError(f"{cells_csv}:{line_no}: bad COCO RLE ({exc})") from None
            pair = tight(bitmap)
            if pair is not None:
                by_id[image_id].append(pair)
    stats: Counter = Counter()
    records = []
    for image_id in sorted(by_id):
        pairs = by_id[image_id]
        raw = InstanceSet.from_crops([p[0] for p in pairs], [p[1] for p in pairs])
        records.append(Record(image_id, image_rows[image_id]["cell_type"], PSEUDO_SPLIT, "",
                              raw, repair(raw, policy, stats)))
    return records


# SH-SY5Y has the fewest annotated images (42 of 405) yet the densest, hardest cells: each type's
# share of sampled images follows sqrt(image count), and shsy5y's share is then doubled.
CLASS_BOOST = {"shsy5y": 2.0, "astro": 1.0, "cort": 1.0}


def sampling_weights(records: list[Record], boost: dict[str, float] | None = None,
                     pseudo_weight: float = 0.5) -> np.ndarray:
    """`boost` overrides CLASS_BOOST per type (e.g. a run that must see more astrocytes).

    Pseudo-labelled images join their type's share without enlarging it (the share follows the
    annotated images only), each drawn `pseudo_weight` times as often as an annotated one: they
    add variety without moving the balance between the types that the boosts set.
    """
    factors = {**CLASS_BOOST, **(boost or {})}
    counts = Counter(r.cell_type for r in records if r.split != PSEUDO_SPLIT)
    each = [pseudo_weight if r.split == PSEUDO_SPLIT else 1.0 for r in records]
    mass = Counter()
    for r, e in zip(records, each):
        mass[r.cell_type] += e
    share = {c: np.sqrt(counts.get(c, 0) or 1) * factors[c] for c in mass}
    w = np.array([share[r.cell_type] * e / mass[r.cell_type] for r, e in zip(records, each)],
                 dtype=np.float64)
    return w / w.sum()


def parse_class_boost(items: list[str]) -> dict[str, float]:
    """`["astro=1.75"]` -> {"astro": 1.75}; names a bad item and what is accepted."""
    boost = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            factor = float(value)
        except ValueError:
            factor = -1.0
        if name not in CLASS_BOOST or factor <= 0:
            raise SystemExit(f"--class-boost {item!r}: expected TYPE=FACTOR with TYPE one of "
                             f"{', '.join(CLASS_BOOST)} and FACTOR > 0")
        boost[name] = factor
    return boost


class ImageBank:
    """All images of a split in memory (405 x 366 KB): reading PNGs every step would dominate."""

    def __init__(self, records: list[Record]):
        root = data_root()
        self.images = {r.id: read_image(r.id, root) for r in records}

    def __getitem__(self, record_id: str) -> np.ndarray:
        return self.images[record_id]


def gray_stats(records: list[Record]) -> tuple[float, float]:
    """Mean and std of the training images' gray levels, on 0..1 (the models' normalisation)."""
    root = data_root()
    s = s2 = n = 0.0
    for r in records:
        x = read_image(r.id, root).astype(np.float64) / 255.0
        s += x.sum()
        s2 += (x * x).sum()
        n += x.size
    mean = s / n
    return float(mean), float(np.sqrt(s2 / n - mean * mean))
