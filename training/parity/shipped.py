"""Parity of the Swift engine on the shipped weights and real validation images.

For each network in models/ (or the files named), PyTorch runs the weights as stored on whole
704x520 `split=val` images, one per cell type, and the outputs go to
`out/parity/<net>-<image>.expected.safetensors` beside a link to the model file. The Swift side
then runs the same files through the engine and compares:

    python3 training/parity/shipped.py                 # from the repository root, ~1 minute
    PLATESEG_PARITY_DIR=out/parity swift test --filter ShippedParity
"""
from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "training", "parity"))
from training.archs.export import load_model  # noqa: E402
from make_fixtures import maskrcnn_reference, upernet_reference, yolox_reference  # noqa: E402

DATA = os.environ.get("PLATESEG_DATA", os.path.join(ROOT, "..", "shared", "data", "sartorius"))
OUT = os.path.join(ROOT, "out", "parity")


def images() -> list[str]:
    """The first `split=val` image of each cell type (no known issue), in a fixed order."""
    chosen: dict[str, str] = {}
    with open(os.path.join(DATA, "images.csv")) as f:
        for row in csv.DictReader(f):
            if row["split"] == "val" and not row["known_issue"] and row["cell_type"] not in chosen:
                chosen[row["cell_type"]] = row["id"]
    return [chosen[t] for t in sorted(chosen)]


def main(argv: list[str]) -> int:
    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    os.makedirs(OUT, exist_ok=True)
    files = argv or [os.path.join(ROOT, "models", f"{n}.safetensors") for n in ("yolox", "maskrcnn", "upernet")]
    references = {"yolox": yolox_reference, "upernet": upernet_reference, "maskrcnn": maskrcnn_reference}
    for path in files:
        if not os.path.isfile(path):
            print(f"{path}: no such model file, skipped")
            continue
        arch, model = load_model(path)
        link = os.path.join(OUT, f"{arch}.safetensors")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.abspath(path), link)
        for image_id in images():
            image = os.path.abspath(os.path.join(DATA, "images", "train", f"{image_id}.png"))
            gray = torch.from_numpy(np.array(Image.open(image).convert("L")))
            expected = references[arch](model, gray)
            if arch == "maskrcnn" and (model.cfg.test_time_flip or model.cfg.input_scale != 1):
                # the engine's output: boxes in tile pixels, and with test-time flip the fusion of
                # the tile's and its mirror image's detections
                from training.archs.maskrcnn import detect, detect_with_flip, preprocess
                look = detect_with_flip if model.cfg.test_time_flip else detect
                fused = look(model, preprocess(gray, model.cfg))
                expected.update({"boxes": fused.boxes, "scores": fused.scores, "labels": fused.labels.float(),
                                 "probabilities": fused.probabilities, "masks": fused.masks})
            info = {"image": image, "crop": [0, 0, gray.shape[1], gray.shape[0]], "model": f"{arch}.safetensors"}
            save_file({k: v.detach().float().contiguous() for k, v in expected.items()},
                      os.path.join(OUT, f"{arch}-{image_id}.expected.safetensors"),
                      metadata={"plateseg": json.dumps(info)})
            count = len(expected["boxes"]) if "boxes" in expected else "-"
            print(f"{arch} on {image_id}: {count} detections")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
