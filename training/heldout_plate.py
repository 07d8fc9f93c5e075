"""Links the images no precision choice is made on into a plate folder: the last 20 by id of each
cell type among `split=train` images without a known issue and outside every
models/<network>.int8.json calibration set. Usage: python3 training/heldout_plate.py DATA PLATE"""
import csv
import glob
import json
import os
import sys

data, plate = sys.argv[1], sys.argv[2]
calibration = {name for f in glob.glob("models/*.int8.json") for name in json.load(open(f))["images"]}
by_type = {}
for row in sorted(csv.DictReader(open(os.path.join(data, "images.csv"))), key=lambda r: r["id"], reverse=True):
    if row["split"] == "train" and not row["known_issue"] and row["id"] + ".png" not in calibration:
        by_type.setdefault(row["cell_type"], []).append(row["id"])
for ids in by_type.values():
    for i in ids[:20]:
        os.symlink(os.path.realpath(os.path.join(data, "images", "train", i + ".png")), os.path.join(plate, i + ".png"))
