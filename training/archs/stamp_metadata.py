"""Sets entries of a safetensors file's `plateseg` metadata in place, leaving every tensor's bytes
as they are (the header is rewritten, padded to 8 bytes; offsets are relative to its end).
Needs the standard library only.

    python3 -m training.archs.stamp_metadata pixel_size=1.24 models/*.safetensors
"""
from __future__ import annotations

import json
import struct
import sys

# µm per pixel of the training images: the Sartorius data (and LIVECell, from the same lab) were
# imaged with an Incucyte's 10x objective, 1.24 µm per pixel by Sartorius' specification sheet;
# the data's own README states no pixel size.
TRAINING_PIXEL_SIZE_UM = 1.24


def stamp(path: str, updates: dict) -> None:
    with open(path, "rb") as f:
        blob = f.read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    meta = header.get("__metadata__") or {}
    settings = json.loads(meta.get("plateseg", "{}"))
    settings.update(updates)
    meta["plateseg"] = json.dumps(settings, sort_keys=True)
    header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + length:])


def main(argv: list[str]) -> None:
    updates = {}
    paths = []
    for arg in argv:
        if "=" in arg:
            key, value = arg.split("=", 1)
            updates[key] = json.loads(value)
        else:
            paths.append(arg)
    if not updates or not paths:
        sys.exit("usage: python3 -m training.archs.stamp_metadata key=json-value … file.safetensors …")
    for path in paths:
        stamp(path, updates)
        print(f"{path}: {updates}")


if __name__ == "__main__":
    main(sys.argv[1:])
