"""YOLOX (tiny by default, trained from scratch): Mosaic, multi-scale input, SimOTA, IoU/obj/cls losses.

    python3 -m plateseg_train.yolox train            # start or resume training/runs/yolox
    python3 -m plateseg_train.yolox eval --checkpoint training/runs/yolox/best.pt

YOLOX yields boxes only, so its validation score is the Sartorius formula on boxes (box IoU,
thresholds 0.50:0.05:0.95, mean over images); masks come from Mask R-CNN in the ensemble.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from archs import yolox as archs_yolox
from archs.yolox import YOLOXConfig

from . import data
from .augment import crop_sample, geometric, jitter, mosaic
from .metric import ScoreBoard, score_from_iou
from .cli import trainer_parser
from .runner import (LoopConfig, Log, Schedule, evaluate_checkpoint, run, seed_everything, step_rng,
                     with_pseudo_labels)

SCALES = (256, 288, 320, 352, 384)  # input sizes, multiples of 32 ("progressive" multi-scale)


def default_config(size: str = "tiny", mean: float = 0.5018, std: float = 0.0529) -> YOLOXConfig:
    return YOLOXConfig.named(size, in_channels=1, mean=[mean], std=[std], score_threshold=0.3,
                             nms_threshold=0.45, max_detections=1000)


def build(arch: dict) -> torch.nn.Module:
    return archs_yolox.YOLOX(YOLOXConfig(**arch))


# ---------------------------------------------------------------------------------------------
# batches


def make_batch_fn(records, bank, batch: int, seed: int, mosaic_prob: float = 0.8,
                  pseudo_weight: float = 0.5):
    weights = data.sampling_weights(records, pseudo_weight=pseudo_weight)

    def view(rng, size):
        r = records[rng.choice(len(records), p=weights)]
        return geometric(crop_sample(bank[r.id], r.clean, r.label, size, rng), rng)

    def batch_fn(step: int):
        rng = step_rng(seed, step)
        out_size = int(rng.choice(SCALES))
        # scale jitter: build the view at in_size and resample it to out_size
        in_size = int(round(out_size / rng.uniform(0.8, 1.25)))
        images, targets = [], []
        for _ in range(batch):
            if rng.random() < mosaic_prob:
                s = mosaic([view(rng, in_size) for _ in range(4)], in_size, rng)
            else:
                s = view(rng, in_size)
            img = torch.from_numpy(jitter(s.image, rng)).float()[None, None]
            img = F.interpolate(img, size=(out_size, out_size), mode="bilinear",
                                align_corners=False)[0]
            boxes = torch.from_numpy(s.instances.boxes.astype(np.float32)).reshape(-1, 4)
            boxes *= out_size / in_size
            images.append(img)
            targets.append((boxes, torch.from_numpy(s.labels) - 1))  # class index 0..2
        return torch.stack(images), targets
    return batch_fn


def normalise(images: torch.Tensor, cfg: YOLOXConfig) -> torch.Tensor:
    """(N, 1, H, W) on 0..255 -> the model's input (see archs.yolox.preprocess)."""
    mean = torch.tensor(cfg.mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std).view(1, -1, 1, 1)
    return (images / 255.0 - mean) / std


# ---------------------------------------------------------------------------------------------
# SimOTA and the losses


def flatten(outs, strides):
    """Raw head maps -> per-anchor (N, A, 5 + C) raw outputs, (A, 2) grid centres, (A,) strides."""
    raw, grids, scales = [], [], []
    for o, s in zip(outs, strides):
        n, c, h, w = o.shape
        raw.append(o.permute(0, 2, 3, 1).reshape(n, h * w, c))
        yv, xv = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grids.append(torch.stack((xv, yv), 2).reshape(-1, 2).float())
        scales.append(torch.full((h * w,), float(s)))
    return torch.cat(raw, 1), torch.cat(grids), torch.cat(scales)


def cxcywh_to_xyxy(b):
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


@torch.no_grad()
def simota(pred_boxes, obj_logit, cls_logit, gt_boxes, gt_cls, centres, strides,
           radius: float = 2.5):
    """SimOTA (YOLOX): anchors in a gt box or within `radius` strides of its centre compete;
    cost = class BCE + 3 * -log(IoU); each gt takes its dynamic-k cheapest anchors (k = sum of
    its top-10 IoUs), and an anchor claimed twice goes to its cheapest gt.

    Returns (fg mask (A,), matched gt index per fg anchor, IoU of each fg anchor with its gt).
    """
    a = centres.shape[0]
    g = gt_boxes.shape[0]
    gx = (gt_boxes[:, 0] + gt_boxes[:, 2]) / 2
    gy = (gt_boxes[:, 1] + gt_boxes[:, 3]) / 2
    cx, cy = centres[:, 0], centres[:, 1]
    in_box = ((cx[None] > gt_boxes[:, 0:1]) & (cx[None] < gt_boxes[:, 2:3]) &
              (cy[None] > gt_boxes[:, 1:2]) & (cy[None] < gt_boxes[:, 3:4]))
    r = radius * strides[None]
    in_centre = ((cx[None] - gx[:, None]).abs() < r) & ((cy[None] - gy[:, None]).abs() < r)
    candidate = (in_box | in_centre).any(0)
    fg = torch.zeros(a, dtype=torch.bool)
    if g == 0 or not candidate.any():
        return fg, torch.zeros(0, dtype=torch.long), torch.zeros(0)
    idx = candidate.nonzero().squeeze(1)
    both = (in_box & in_centre)[:, idx]
    ious = box_iou(gt_boxes, pred_boxes[idx])  # (G, a')
    iou_cost = -torch.log(ious + 1e-8)
    p = (cls_logit[idx].sigmoid() * obj_logit[idx].sigmoid()[:, None]).sqrt()  # (a', C)
    onehot = F.one_hot(gt_cls, cls_logit.shape[1]).float()
    cls_cost = F.binary_cross_entropy(p[None].expand(g, -1, -1).clamp(1e-6, 1 - 1e-6),
                                      onehot[:, None].expand(-1, idx.numel(), -1),
                                      reduction="none").sum(-1)
    cost = cls_cost + 3.0 * iou_cost + 1e5 * (~both)
    k_top = min(10, idx.numel())
    dynamic_k = torch.topk(ious, k_top, dim=1).values.sum(1).int().clamp(min=1)
    matching = torch.zeros_like(cost, dtype=torch.bool)
    for gi in range(g):
        _, pos = torch.topk(cost[gi], int(dynamic_k[gi]), largest=False)
        matching[gi, pos] = True
    multi = matching.sum(0) > 1
    if multi.any():
        best = cost[:, multi].argmin(0)
        matching[:, multi] = False
        matching[best, multi.nonzero().squeeze(1)] = True
    fg_local = matching.any(0)
    matched_gt = matching[:, fg_local].float().argmax(0)
    fg[idx[fg_local]] = True
    return fg, matched_gt, ious[matched_gt, fg_local.nonzero().squeeze(1)]


def loss_fn_for(cfg: YOLOXConfig):
    strides = cfg.strides

    def loss_fn(model, batch):
        images, targets = batch
        outs = model(normalise(images, cfg))
        raw, centres, scales = flatten(outs, strides)
        n, a, _ = raw.shape
        xy = (raw[..., :2] + centres[None]) * scales[None, :, None]
        wh = torch.exp(raw[..., 2:4].clamp(max=10.0)) * scales[None, :, None]
        boxes = cxcywh_to_xyxy(torch.cat([xy, wh], -1))
        obj_logit, cls_logit = raw[..., 4], raw[..., 5:]
        anchor_xy = (centres + 0.5) * scales[:, None]  # cell centres in input pixels
        obj_target = torch.zeros(n, a)
        iou_terms, cls_terms, num_fg = [], [], 0
        for i, (gt_boxes, gt_cls) in enumerate(targets):
            fg, matched, ious = simota(boxes[i].detach(), obj_logit[i].detach(),
                                      cls_logit[i].detach(), gt_boxes, gt_cls, anchor_xy, scales)
            if fg.any():
                obj_target[i, fg] = 1.0
                num_fg += int(fg.sum())
                iou = torch.diag(box_iou(boxes[i][fg], gt_boxes[matched]))
                iou_terms.append(1.0 - iou ** 2)  # Megvii's IOUloss("iou")
                cls_target = F.one_hot(gt_cls[matched], cls_logit.shape[-1]).float() * ious[:, None]
                cls_terms.append(F.binary_cross_entropy_with_logits(
                    cls_logit[i][fg], cls_target, reduction="none").sum(-1))
        denom = max(num_fg, 1)
        loss_obj = F.binary_cross_entropy_with_logits(obj_logit, obj_target, reduction="sum") / denom
        zero = raw.sum() * 0.0
        loss_iou = 5.0 * torch.cat(iou_terms).sum() / denom if iou_terms else zero
        loss_cls = torch.cat(cls_terms).sum() / denom if cls_terms else zero
        return {"loss_iou": loss_iou, "loss_obj": loss_obj, "loss_cls": loss_cls}
    return loss_fn


# ---------------------------------------------------------------------------------------------
# validation


@torch.no_grad()
def predict(model, gray: np.ndarray, score_thresh: float):
    cfg = model.cfg
    x = archs_yolox.preprocess(torch.from_numpy(gray), cfg)
    decoded = archs_yolox.decode(model(x), cfg.strides)
    keep_cfg = YOLOXConfig(**{**asdict(cfg), "score_threshold": score_thresh})
    boxes, scores, labels, _ = archs_yolox.postprocess(decoded, keep_cfg, gray.shape)
    return boxes, scores, labels


def box_score(truth: data.InstanceSet, boxes: torch.Tensor) -> float:
    """The Sartorius formula with box IoU in place of mask IoU."""
    gt = torch.from_numpy(truth.boxes.astype(np.float32)).reshape(-1, 4)
    n_true, n_pred = gt.shape[0], boxes.shape[0]
    iou = box_iou(gt, boxes).numpy() if n_true and n_pred else np.zeros((n_true, n_pred))
    return score_from_iou(iou)


def evaluate(model, records, bank, score_thresholds=(0.3,)) -> dict:
    boards = {t: ScoreBoard() for t in score_thresholds}
    low = min(score_thresholds)
    for r in records:
        boxes, scores, _ = predict(model, bank[r.id], low)
        for t, board in boards.items():
            board.add(r.cell_type, box_score(r.raw, boxes[scores >= t]))
    summaries = {f"{t:.2f}": b.summary() for t, b in boards.items()}
    best_t = max(summaries, key=lambda k: summaries[k]["all"])
    return {"all": summaries[best_t]["all"], "metric": "box", "score_thresh": float(best_t),
            "per_type": {k: v for k, v in summaries[best_t].items() if k in data.CLASSES},
            "by_thresh": {k: round(v["all"], 4) for k, v in summaries.items()}}


def main(argv=None):
    from .maskrcnn import fixed_subset, parse_stop_at

    p, t, _ = trainer_parser(__doc__, name="yolox", batch=4, steps=8000, lr=1e-3, eval_per_type=5,
                             score_thresh=[0.2, 0.3, 0.4, 0.5])
    t.add_argument("--size", default="tiny", choices=["nano", "tiny", "s"])
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
        arch = asdict(default_config(args.size))
        model = build(arch)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
        run(LoopConfig(name=args.name, seed=seed, eval_minutes=args.eval_minutes), model, opt,
            Schedule(total_steps=args.steps, lr=args.lr), arch,
            make_batch_fn(train, bank, args.batch, seed, pseudo_weight=args.pseudo_weight), loss_fn_for(model.cfg),
            lambda m: evaluate(m, val, bank, (0.2, 0.3, 0.4)), log,
            stop_at=parse_stop_at(args.stop_at), init=args.init)
    else:
        evaluate_checkpoint(args, records, build, lambda m, recs, bank: evaluate(m, recs, bank, tuple(args.score_thresh)))


if __name__ == "__main__":
    main()
