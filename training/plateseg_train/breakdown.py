"""Where the score is lost: recall and precision per cell type at each IoU threshold of the
Sartorius metric, for cells exported by plateseg (`plateseg export --format csv`) against a
split's annotations.

    PYTHONPATH=. python3 -m plateseg_train.breakdown CELLS_CSV [--split val]
"""
from __future__ import annotations

import argparse
import csv
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import data, metric


def instance_maps(cells_csv: Path) -> dict[str, np.ndarray]:
    """Each image's cells painted best score first (plateseg's cells do not overlap; painting
    keeps that true for any CSV)."""
    from pycocotools import mask as coco_mask  # training-only dependency

    by_image: dict[str, list] = defaultdict(list)
    with open(cells_csv, newline="") as f:
        for row in csv.DictReader(f):
            with warnings.catch_warnings():  # pycocotools 2.0 against numpy 2: harmless
                warnings.simplefilter("ignore", DeprecationWarning)
                mask = coco_mask.decode({"size": [data.HEIGHT, data.WIDTH], "counts": row["rle"].encode()})
            by_image[Path(row["image"]).stem].append((float(row["score"]), mask.astype(bool)))
    maps = {}
    for image_id, cells in by_image.items():
        out = np.zeros((data.HEIGHT, data.WIDTH), dtype=np.int32)
        for k, (_, mask) in enumerate(sorted(cells, key=lambda c: -c[0])):
            out[mask & (out == 0)] = k + 1
        maps[image_id] = out
    return maps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cells_csv", type=Path)
    parser.add_argument("--split", default="val")
    args = parser.parse_args(argv)
    maps = instance_maps(args.cells_csv)
    tally = metric.MatchTally()
    for record in data.split(data.load_records(log=lambda *_: None), args.split):
        empty = np.zeros((data.HEIGHT, data.WIDTH), dtype=np.int32)
        tally.add(record.cell_type, record.raw, maps.get(record.id, empty))
    print("\n".join(tally.lines()))


if __name__ == "__main__":
    main()
