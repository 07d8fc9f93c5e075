"""Export a training checkpoint to models/<model>.safetensors through archs.export, then reload the
file into a fresh model and check it reproduces the checkpoint's outputs on a validation image.

    python3 -m plateseg_train.export_models maskrcnn training/runs/maskrcnn/best.pt
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
from safetensors.torch import load_file

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
        from archs.upernet import preprocess
        return [model(preprocess(torch.from_numpy(gray), model.cfg))]


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
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"],
                   help="stored precision (float16 halves the file; the engine reads both)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = args.out or str(data.REPO_ROOT / "models" / f"{args.model}.safetensors")
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    model = BUILDERS[args.model](state["arch"])
    model.load_state_dict(state["model"])
    model.eval()
    if args.score_thresh is not None and args.model == "upernet":
        p.error("--score-thresh applies to maskrcnn and yolox only")
    set_score_threshold(args.model, model, args.score_thresh)
    meta = archs_export.model_metadata(model)
    dtype = getattr(torch, args.dtype)
    archs_export.export(model, meta, out, dtype=dtype)
    # the reference is the checkpoint rounded to the stored precision, as the engine will see it
    model.load_state_dict({k: v.to(dtype).to(v.dtype) if v.is_floating_point() else v
                           for k, v in model.state_dict().items()})

    # round trip: a fresh model from the file alone must give the same outputs
    fresh = BUILDERS[args.model](state["arch"])
    set_score_threshold(args.model, fresh, args.score_thresh)
    missing, unexpected = fresh.load_state_dict(load_file(out), strict=False)
    skipped = [k for k in missing if not k.endswith("num_batches_tracked")
               and not k.startswith("auxiliary_head.")]
    if skipped or unexpected:
        print(f"{out}: tensors missing {skipped[:5]} unexpected {unexpected[:5]}", file=sys.stderr)
        return 1
    fresh.eval()
    val = data.split(data.load_records(), "val")[0]
    gray = data.read_image(val.id)
    worst = 0.0
    for a, b in zip(outputs(args.model, model, gray), outputs(args.model, fresh, gray)):
        if a.shape != b.shape:
            print(f"{out}: reloaded output shape {tuple(b.shape)} != {tuple(a.shape)}",
                  file=sys.stderr)
            return 1
        if a.numel():
            worst = max(worst, float((a - b).abs().max()))
    print(json.dumps({"file": out, "dtype": args.dtype, "tensors": len(load_file(out)),
                      "step": state.get("step"),
                      "val": state.get("val"), "round_trip_max_abs_diff": worst}, indent=2))
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
