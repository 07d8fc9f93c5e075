"""Export a training checkpoint to models/<model>.safetensors through archs.export, then reload the
file into a fresh model and check it reproduces the checkpoint's outputs on a validation image.

    python3 -m plateseg_train.export_models maskrcnn training/runs/maskrcnn/best.pt --dtype int8
    python3 -m plateseg_train.export_models upernet models/upernet.safetensors --dtype int8

The second form re-stores an exported file (e.g. f16 -> int8) when its checkpoint is gone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from archs import export as archs_export

from . import data, maskrcnn, upernet, yolox

BUILDERS = {"maskrcnn": maskrcnn.build, "yolox": yolox.build, "upernet": upernet.build}


def outputs(name: str, model, gray) -> list[torch.Tensor]:
    with torch.no_grad():
        if name == "maskrcnn":
            out = model([maskrcnn.to_tensor(gray)])[0]
            return [out["boxes"], out["scores"], out["masks"]]
        if name == "yolox":
            from archs.yolox import preprocess
            return list(model(preprocess(torch.from_numpy(gray), model.cfg)))
        from archs.upernet import predict_tile
        return [predict_tile(model, torch.from_numpy(gray))]


def set_score_threshold(name: str, model, value: float | None) -> None:
    if value is None:
        return
    model.cfg.score_threshold = value
    if name == "maskrcnn":
        model.roi_heads.score_thresh = value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", choices=sorted(BUILDERS))
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="default: models/<model>.safetensors")
    p.add_argument("--score-thresh", type=float, default=None,
                   help="detection score threshold stored in the metadata (the one chosen on val)")
    p.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction, default=None,
                   help="also run on the mirror image and fuse both (maskrcnn: archs.maskrcnn.fuse_flip, "
                        "upernet: archs.upernet.predict_tile); default: as the checkpoint or file says")
    p.add_argument("--dtype", default="int8", choices=["int8", "float16", "float32"],
                   help="stored precision: int8 = conv/linear weights per output channel + f16 rest "
                        "(a quarter of float32), float16 halves it; the engine reads all three")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = args.out or str(data.REPO_ROOT / "models" / f"{args.model}.safetensors")
    if args.checkpoint.endswith(".safetensors"):
        arch, model = archs_export.load_model(args.checkpoint)
        if arch != args.model:
            p.error(f"{args.checkpoint} holds a {arch}, not a {args.model}")
        state = {}
    else:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        model = BUILDERS[args.model](state["arch"])
        model.load_state_dict(state["model"])
        model.eval()
    if args.score_thresh is not None and args.model == "upernet":
        p.error("--score-thresh applies to maskrcnn and yolox only")
    set_score_threshold(args.model, model, args.score_thresh)
    if args.test_time_flip is not None:
        if args.model == "yolox":
            p.error("--test-time-flip applies to maskrcnn and upernet only")
        model.cfg.test_time_flip = args.test_time_flip
    meta = archs_export.model_metadata(model)
    stored = archs_export.export(model, meta, out, dtype=getattr(torch, args.dtype))
    # the reference is the checkpoint rounded to the stored precision, as the engine will see it
    model.load_state_dict(stored, strict=False)
    before = sum(v.numel() * v.element_size() for v in archs_export.inference_state(model).values())

    # round trip: a fresh model from the file alone must give the same outputs
    try:
        _, fresh = archs_export.load_model(out)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    val = data.split(data.load_records(), "val")[0]
    gray = data.read_image(val.id)
    worst = 0.0
    for a, b in zip(outputs(args.model, model, gray), outputs(args.model, fresh, gray)):
        if a.shape != b.shape:
            print(f"{out}: reloaded output shape {tuple(b.shape)} != {tuple(a.shape)}",
                  file=sys.stderr)
            return 1
        if a.numel():
            # relative to the output's size: boxes are in pixels up to 704, and a file that
            # scales its input (input_scale) routes them through an interpolation
            worst = max(worst, float((a - b).abs().max()) / max(1.0, float(a.abs().max())))
    print(json.dumps({"file": out, "dtype": args.dtype, "tensors": len(stored),
                      "bytes": os.path.getsize(out), "float32_bytes": before,
                      "step": state.get("step"),
                      "val": state.get("val"), "round_trip_max_relative_diff": worst}, indent=2))
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
