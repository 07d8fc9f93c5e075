"""UPerNet (ResNet-18, dilated last stage, PPM + FPN head; trained from scratch): CE + 0.4 x FCN aux.

    python3 -m plateseg_train.upernet train            # start or resume training/runs/upernet
    python3 -m plateseg_train.upernet eval --checkpoint training/runs/upernet/best.pt

Per-pixel classes: background, shsy5y, astro, cort (and, with --boundary, a fifth "boundary"
class on pixels where two cells touch or overlap, which lets connected components split
touching cells). Validation: the Sartorius metric on the connected components of the
predicted foreground, plus foreground IoU.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from archs import upernet as archs_upernet
from archs.upernet import UPerNetConfig

from . import data
from .augment import augmented_crop
from .metric import ScoreBoard, image_score
from .cli import trainer_parser
from .runner import (LoopConfig, Log, Schedule, evaluate_checkpoint, run, seed_everything, step_rng,
                     with_pseudo_labels)

AUX_WEIGHT = 0.4  # mmsegmentation's UPerNet configs


def default_config(boundary: bool = False, mean: float = 0.5018, std: float = 0.0529,
                   input_scale: float = 1.0):
    classes = list(data.CLASSES) + (["boundary"] if boundary else [])
    # channels 128 (not 512): the 3x3 fpn_bottleneck over 4 x channels at 1/4 resolution is the
    # head's cost, and 512 would make a 256 px step take ~20 s on one core.
    return UPerNetConfig(depth=18, dilation=[False, False, True], channels=128, aux_channels=64,
                         in_channels=1, classes=classes, mean=[mean], std=[std], input_scale=input_scale)


def build(arch: dict) -> torch.nn.Module:
    model = archs_upernet.UPerNet(UPerNetConfig(**arch))
    model.adapt_init = lambda tensors: add_boundary_channel(tensors, model.cfg)
    return model


# The new boundary channel starts this far below background: the widened network first predicts
# what the file did, and the channel learns from the boundary pixels' gradient alone.
BOUNDARY_START_BIAS = -4.0


def add_boundary_channel(tensors: dict, cfg: UPerNetConfig) -> dict:
    """A file without the boundary class seeding a run with it: one more classifier channel,
    zero weights. The auxiliary head is not exported and starts fresh either way."""
    weight, bias = tensors.get("decode_head.conv_seg.weight"), tensors.get("decode_head.conv_seg.bias")
    wanted = len(cfg.classes) + 1
    if weight is None or bias is None or weight.shape[0] != wanted - 1 or cfg.classes[-1] != "boundary":
        return tensors
    out = dict(tensors)
    out["decode_head.conv_seg.weight"] = torch.cat([weight, torch.zeros_like(weight[:1])])
    out["decode_head.conv_seg.bias"] = torch.cat([bias, bias[:1] + BOUNDARY_START_BIAS])
    return out


def make_batch_fn(records, bank, crop: int, batch: int, seed: int, boundary: bool,
                  cfg: UPerNetConfig, pseudo_weight: float = 0.5):
    weights = data.sampling_weights(records, pseudo_weight=pseudo_weight)
    mean = torch.tensor(cfg.mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std).view(1, -1, 1, 1)

    def batch_fn(step: int):
        rng = step_rng(seed, step)
        images, labels = [], []
        for idx in rng.choice(len(records), size=batch, p=weights):
            r = records[idx]
            s = augmented_crop(bank[r.id], r.clean, r.label, crop, rng)
            images.append(torch.from_numpy(s.image).float()[None])
            labels.append(torch.from_numpy(s.semantic(boundary)))
        # only the input is scaled: the loss resizes the logits to the labels, as inference
        # resizes them to the tile
        x = archs_upernet.scale_input((torch.stack(images) / 255.0 - mean) / std, cfg.input_scale)
        return x, torch.stack(labels)
    return batch_fn


def loss_fn(model, batch):
    x, y = batch
    main, aux = model(x)
    main = F.interpolate(main, size=y.shape[1:], mode="bilinear", align_corners=False)
    aux = F.interpolate(aux, size=y.shape[1:], mode="bilinear", align_corners=False)
    return {"loss_ce": F.cross_entropy(main, y), "loss_aux": AUX_WEIGHT * F.cross_entropy(aux, y)}


@torch.no_grad()
def predict(model, gray: np.ndarray) -> np.ndarray:
    """(C, H, W) class probabilities, background first."""
    x = archs_upernet.preprocess(torch.from_numpy(gray), model.cfg)
    return model.predict(x, gray.shape)[0].numpy()


def instances_from_semantic(probs: np.ndarray, min_area: int = 20) -> np.ndarray:
    """Connected components of the cell classes (boundary and background split them)."""
    cls = probs.argmax(0)
    cells = (cls >= 1) & (cls <= len(data.CLASSES))
    labels, n = ndimage.label(cells)
    if n == 0:
        return labels.astype(np.int32)
    sizes = np.bincount(labels.ravel())
    small = sizes < min_area
    small[0] = False
    labels[small[labels]] = 0
    _, inverse = np.unique(labels, return_inverse=True)  # renumber 1..k, 0 stays background
    return inverse.reshape(labels.shape).astype(np.int32)


def evaluate(model, records, bank) -> dict:
    board = ScoreBoard()
    inter = union = 0
    for r in records:
        probs = predict(model, bank[r.id])
        inst = instances_from_semantic(probs)
        board.add(r.cell_type, image_score(r.raw, inst))
        truth = np.zeros(inst.shape, dtype=bool)
        for k in range(len(r.raw)):
            truth |= r.raw.full(k)
        pred = inst > 0
        inter += int((truth & pred).sum())
        union += int((truth | pred).sum())
    s = board.summary()
    return {"all": s["all"], "metric": "components", "foreground_iou": inter / max(union, 1),
            "per_type": {k: v for k, v in s.items() if k in data.CLASSES}}


def main(argv=None):
    from .maskrcnn import fixed_subset, parse_stop_at

    p, t, _ = trainer_parser(
        __doc__, name="upernet", crop=256, batch=4, steps=6000, lr=1e-3, eval_per_type=5,
        input_scale_help="scale every input by this (bilinear); the logits come back at the crop's size")
    t.add_argument("--boundary", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = data.load_records()
    if args.cmd == "train":
        seed = args.seed
        seed_everything(seed)
        log = Log(data.RUNS_DIR / args.name / "log.txt")
        train = with_pseudo_labels(data.split(records, "train"), args, log)
        val = fixed_subset(data.split(records, "val"), args.eval_per_type)
        bank = data.ImageBank(train + val)
        if not 0 < args.input_scale <= 4:
            raise SystemExit(f"--input-scale {args.input_scale}: expected above 0 and at most 4")
        arch = asdict(default_config(args.boundary, input_scale=args.input_scale))
        model = build(arch)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        run(LoopConfig(name=args.name, seed=seed, eval_minutes=args.eval_minutes), model, opt,
            Schedule(total_steps=args.steps, lr=args.lr), arch,
            make_batch_fn(train, bank, args.crop, args.batch, seed, args.boundary, model.cfg,
                          args.pseudo_weight),
            loss_fn, lambda m: evaluate(m, val, bank), log, stop_at=parse_stop_at(args.stop_at),
            init=args.init)
    else:
        evaluate_checkpoint(args, records, build, lambda m, recs, bank: evaluate(m, recs, bank))


if __name__ == "__main__":
    main()
