"""Mask R-CNN (ResNet-18 FPN, trained from scratch) on the Sartorius training split.

    python3 -m plateseg_train.maskrcnn train            # start or resume training/runs/maskrcnn
    python3 -m plateseg_train.maskrcnn eval --checkpoint training/runs/maskrcnn/best.pt

Losses are torchvision's: L = L_rpn_objectness + L_rpn_box + L_cls + L_box + L_mask.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone

import numpy as np
import torch

from . import data
from .augment import augmented_crop
from .metric import ScoreBoard, image_score, paint
from archs import maskrcnn as archs_maskrcnn
from archs.maskrcnn import MaskRCNNConfig

from .cli import trainer_parser
from .runner import (LoopConfig, Log, Schedule, evaluate_checkpoint, run, seed_everything, step_rng,
                     with_pseudo_labels)


def default_config(mean: float = 0.5018, std: float = 0.0529) -> MaskRCNNConfig:
    """The shipped configuration; every field travels in the safetensors __metadata__."""
    return MaskRCNNConfig(
        depth=18,
        in_channels=1,
        # Slim heads (torchvision: 256 / 1024 / 256). On one CPU core the 256-channel mask head
        # and FPN made a step 2.7x slower, and fc6 alone (12544 x 1024) was 51 MB of the file.
        fpn_channels=128,
        representation_size=256,
        mask_channels=128,
        anchor_sizes=[12, 24, 48, 96, 192],  # cells are 10-60 px, astrocytes up to ~300
        mean=[mean],  # gray levels of the training split (data.gray_stats)
        std=[std],
        rpn_pre_nms_top_n=3000,
        rpn_post_nms_top_n=2000,
        max_detections=1000,  # shsy5y images hold up to ~800 cells
        frozen_bn=False,  # from scratch: batch norms must learn (frozen would pin them at identity)
    )


def build(arch: dict) -> torch.nn.Module:
    """The archs' Mask R-CNN with training-time sampler sizes set for one CPU core."""
    model = archs_maskrcnn.build(MaskRCNNConfig(**arch))
    # 256 sampled RoIs per crop (64 positives) instead of 512: a 256 px crop holds 20-100 cells.
    model.roi_heads.fg_bg_sampler.batch_size_per_image = 256
    model.rpn._post_nms_top_n["training"] = 1000
    model.adapt_init = lambda tensors: archs_maskrcnn.fold_mask_predictor(tensors, model.cfg)
    return model


def to_tensor(gray: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(gray)).float().div_(255.0)
    return x.unsqueeze(0)


def make_batch_fn(records, bank, crop: int, batch: int, seed: int, crop_astro: int | None = None,
                  boost: dict[str, float] | None = None, pseudo_weight: float = 0.5):
    """`crop_astro`: astrocytes span 100-300 px with their processes, so a crop sized for the
    other two types cuts most of them; they may get a larger one."""
    weights = data.sampling_weights(records, boost, pseudo_weight)

    def batch_fn(step: int):
        rng = step_rng(seed, step)
        images, targets = [], []
        for idx in rng.choice(len(records), size=batch, p=weights):
            r = records[idx]
            size = crop_astro if crop_astro and r.cell_type == "astro" else crop
            s = augmented_crop(bank[r.id], r.clean, r.label, size, rng)
            images.append(to_tensor(s.image))
            boxes = torch.from_numpy(s.instances.boxes.astype(np.float32)).reshape(-1, 4)
            targets.append({"boxes": boxes, "labels": torch.from_numpy(s.labels),
                            "masks": torch.from_numpy(s.masks())})
        return images, targets
    return batch_fn


def loss_fn(model, batch):
    images, targets = batch
    return model(images, targets)


@torch.no_grad()
def predict(model, gray: np.ndarray, score_thresh: float, mask_thresh: float = 0.5):
    """Boolean masks, scores, labels of one full image (detections below score_thresh dropped)."""
    model.roi_heads.score_thresh = score_thresh
    out = model([to_tensor(gray)])[0]
    masks = (out["masks"][:, 0] > mask_thresh).numpy()
    return masks, out["scores"].numpy(), out["labels"].numpy()


def evaluate(model, records, bank, score_thresholds=(0.5,), log=None) -> dict:
    """Sartorius mAP on full images per score threshold; 'all' is the best threshold's score."""
    boards = {t: ScoreBoard() for t in score_thresholds}
    low = min(score_thresholds)
    for i, r in enumerate(records):
        masks, scores, _ = predict(model, bank[r.id], low)
        for t, board in boards.items():
            keep = scores >= t
            board.add(r.cell_type, image_score(r.raw, paint(masks[keep], scores[keep])))
    summaries = {f"{t:.2f}": b.summary() for t, b in boards.items()}
    best_t = max(summaries, key=lambda k: summaries[k]["all"])
    return {"all": summaries[best_t]["all"], "score_thresh": float(best_t),
            "per_type": {k: v for k, v in summaries[best_t].items() if k in data.CLASSES},
            "by_thresh": {k: round(v["all"], 4) for k, v in summaries.items()}}


def fixed_subset(records, per_type: int):
    """A stratified, fixed slice of val for the in-training checks (full val costs minutes)."""
    out = []
    for c in data.CLASSES:
        out += [r for r in records if r.cell_type == c][:per_type]
    return out


def parse_stop_at(text: str | None) -> float | None:
    """'HH:MM' (UTC) -> the next such moment as a timestamp."""
    if not text:
        return None
    try:
        hh, mm = map(int, text.split(":"))
        now = datetime.now(timezone.utc)
        at = now.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
    except ValueError:
        raise SystemExit(f"--stop-at {text!r}: expected UTC time as HH:MM") from None
    return at + 86400 if at < now.timestamp() else at


def main(argv=None):
    p, t, _ = trainer_parser(
        __doc__, name="maskrcnn", crop=320, batch=2, steps=6000, lr=3e-4, eval_per_type=6,
        input_scale_help="scale crops (and at inference tiles) by this before the network: small cells "
                         "then cover more feature pixels, at input_scale^2 the compute",
        score_thresh=[0.3, 0.4, 0.5, 0.6, 0.7])
    t.add_argument("--crop-astro", type=int, default=None,
                   help="crop size for astrocyte images (default: --crop)")
    t.add_argument("--class-boost", nargs="+", default=[], metavar="TYPE=FACTOR",
                   help="scale a type's share of sampled images (default shsy5y=2 astro=1 cort=1)")
    t.add_argument("--class-agnostic-masks", action="store_true",
                   help="one mask channel for all types (with --init: the mean of the file's channels)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    records = data.load_records()
    if args.cmd == "train":
        seed = args.seed
        seed_everything(seed)
        log = Log(data.RUNS_DIR / args.name / "log.txt")
        log(f"command line {json.dumps(vars(args))}")
        train = with_pseudo_labels(data.split(records, "train"), args, log)
        val = fixed_subset(data.split(records, "val"), args.eval_per_type)
        bank = data.ImageBank(train + val)
        arch = asdict(default_config())
        arch["class_agnostic_masks"] = args.class_agnostic_masks
        arch["input_scale"] = args.input_scale
        model = build(arch)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        stop_at = parse_stop_at(args.stop_at)

        def eval_fn(m):
            return evaluate(m, val, bank, (0.4, 0.5, 0.6))
        run(LoopConfig(name=args.name, seed=seed, eval_minutes=args.eval_minutes), model, opt,
            Schedule(total_steps=args.steps, lr=args.lr), arch,
            make_batch_fn(train, bank, args.crop, args.batch, seed, args.crop_astro,
                          data.parse_class_boost(args.class_boost), args.pseudo_weight), loss_fn, eval_fn, log,
            stop_at=stop_at, init=args.init)
    else:
        evaluate_checkpoint(args, records, build, lambda m, recs, bank: evaluate(m, recs, bank, tuple(args.score_thresh)))


if __name__ == "__main__":
    main()
