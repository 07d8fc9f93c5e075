"""Mask R-CNN (He et al., 2017) built from torchvision's `MaskRCNN` with a ResNet-18/34/50 FPN body,
so tensor names are torchvision's `maskrcnn_resnet50_fpn` family (backbone.body.*, backbone.fpn.*,
rpn.head.*, roi_heads.box_head.fc6/fc7, roi_heads.box_predictor.*, roi_heads.mask_head.*,
roi_heads.mask_predictor.*).

Differences from torchvision's defaults, all recorded in the exported metadata:
- 1 input channel (gray) by default, or gray replicated to 3 (in_channels=3, e.g. ImageNet weights);
- anchors sized for 10-60 px cells;
- the tile is never resized to torchvision's min_size/max_size; it is scaled by a fixed
  `input_scale` (1: not at all; above 1 small cells cover more feature pixels) and padded to a
  multiple of 32, and boxes come back in tile pixels;
- up to 1000 detections per tile;
- optionally one mask channel for all classes (`class_agnostic_masks`), so a cell's mask shape does
  not depend on which class the box head guessed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torchvision.models.detection import MaskRCNN
import torchvision
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FrozenBatchNorm2d

from .upernet import scaled_size  # one rounding for every scaled network

CLASSES = ["shsy5y", "astro", "cort"]
BN_EPS = 1e-5  # torchvision's FrozenBatchNorm2d and BatchNorm2d


@dataclass
class MaskRCNNConfig:
    depth: int = 50  # 18, 34, 50
    # 64 is torchvision's ResNet; other widths (small parity fixtures) use upernet.ResNet, same names
    base_width: int = 64
    in_channels: int = 1
    classes: list = field(default_factory=lambda: list(CLASSES))
    fpn_channels: int = 256
    representation_size: int = 1024  # box head FC width
    mask_channels: int = 256  # mask head conv width (4 convs + transposed conv)
    anchor_sizes: list = field(default_factory=lambda: [8, 16, 32, 64, 128])  # one per level P2..P6
    aspect_ratios: list = field(default_factory=lambda: [0.5, 1.0, 2.0])
    # input = (pixel / 255 - mean) / std
    mean: list = field(default_factory=lambda: [0.5])
    std: list = field(default_factory=lambda: [0.25])
    rpn_pre_nms_top_n: int = 1000
    rpn_post_nms_top_n: int = 1000
    rpn_nms_threshold: float = 0.7
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 1000
    frozen_bn: bool = True
    class_agnostic_masks: bool = False
    # inference also runs on the mirror image and fuses both (fuse_flip); the engine reads it too
    test_time_flip: bool = False
    # the tile (and in training its boxes and masks) is scaled by this before the network
    input_scale: float = 1.0


class ClassAgnosticMaskPredictor(MaskRCNNPredictor):
    """One mask logit channel, repeated for every class: torchvision's loss and post-processing pick
    the channel of the box's label, which is then the same channel whatever the label."""

    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int):
        super().__init__(in_channels, dim_reduced, 1)
        self.num_classes = num_classes

    def forward(self, x):
        return super().forward(x).expand(-1, self.num_classes, -1, -1)


def fold_mask_predictor(tensors: dict, cfg: MaskRCNNConfig) -> dict:
    """Weights of a class-specific file made to fit a class-agnostic model: the one mask channel
    starts as the mean of the foreground classes' channels."""
    key = "roi_heads.mask_predictor.mask_fcn_logits."
    if not cfg.class_agnostic_masks or tensors[key + "weight"].shape[0] == 1:
        return tensors
    out = dict(tensors)
    for part in ("weight", "bias"):
        out[key + part] = tensors[key + part][1:].float().mean(0, keepdim=True)
    return out


class FixedScaleTransform(GeneralizedRCNNTransform):
    """Normalise and pad to 32 like torchvision, but scale every tile by one fixed factor (bilinear,
    half-pixel centres) instead of to min_size/max_size; torchvision's postprocess maps boxes and
    masks back to the tile."""

    def __init__(self, scale: float, **kw):
        super().__init__(**kw)
        self.scale = scale

    def resize(self, image, target=None):
        if self.scale == 1:
            return image, target
        h, w = image.shape[-2:]
        size = scaled_size(h, w, self.scale)
        image = torch.nn.functional.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        if target is not None:
            target = dict(target)
            ratio = torch.tensor([size[1] / w, size[0] / h] * 2, dtype=torch.float32)
            target["boxes"] = target["boxes"] * ratio
            if "masks" in target and len(target["masks"]):
                m = torch.nn.functional.interpolate(target["masks"][:, None].float(), size=size, mode="bilinear",
                                                    align_corners=False)[:, 0]
                target["masks"] = (m >= 0.5).to(target["masks"].dtype)
        return image, target


def build(cfg: MaskRCNNConfig) -> MaskRCNN:
    if cfg.base_width == 64:
        norm = FrozenBatchNorm2d if cfg.frozen_bn else nn.BatchNorm2d
        body = torchvision.models.resnet.__dict__[f"resnet{cfg.depth}"](weights=None, norm_layer=norm)
        if cfg.in_channels != 3:
            body.conv1 = nn.Conv2d(cfg.in_channels, 64, 7, 2, 3, bias=False)
        widths = [64 * m * (4 if cfg.depth >= 50 else 1) for m in (1, 2, 4, 8)]
    else:
        from .upernet import ResNet
        body = ResNet(cfg.depth, cfg.in_channels, (False, False, False), cfg.base_width)
        widths = body.out_channels
    backbone = BackboneWithFPN(body, {f"layer{i}": str(i - 1) for i in range(1, 5)}, widths, cfg.fpn_channels,
                               extra_blocks=LastLevelMaxPool())
    n = len(cfg.classes) + 1
    anchors = AnchorGenerator(tuple((s,) for s in cfg.anchor_sizes), (tuple(cfg.aspect_ratios),) * len(cfg.anchor_sizes))
    C = cfg.fpn_channels
    model = MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n,
        rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n,
        rpn_nms_thresh=cfg.rpn_nms_threshold,
        box_head=TwoMLPHead(C * 7 * 7, cfg.representation_size),
        box_predictor=FastRCNNPredictor(cfg.representation_size, n),
        box_score_thresh=cfg.score_threshold,
        box_nms_thresh=cfg.nms_threshold,
        box_detections_per_img=cfg.max_detections,
        mask_head=MaskRCNNHeads(C, [cfg.mask_channels] * 4, 1),
        mask_predictor=(ClassAgnosticMaskPredictor if cfg.class_agnostic_masks else MaskRCNNPredictor)(
            cfg.mask_channels, cfg.mask_channels, n),
    )
    model.transform = FixedScaleTransform(cfg.input_scale, min_size=520, max_size=704, image_mean=cfg.mean,
                                          image_std=cfg.std)
    model.cfg = cfg
    return model


def metadata(cfg: MaskRCNNConfig) -> dict:
    return {
        "arch": "maskrcnn",
        "depth": cfg.depth,
        "base_width": cfg.base_width,
        "in_channels": cfg.in_channels,
        "classes": cfg.classes,
        "fpn_channels": cfg.fpn_channels,
        "representation_size": cfg.representation_size,
        "mask_channels": cfg.mask_channels,
        "anchor_sizes": cfg.anchor_sizes,
        "aspect_ratios": cfg.aspect_ratios,
        "mean": cfg.mean,
        "std": cfg.std,
        "pad_value": 0.0,  # torchvision pads after normalisation, with zeros
        "pad_multiple": 32,
        "rpn_pre_nms_top_n": cfg.rpn_pre_nms_top_n,
        "rpn_post_nms_top_n": cfg.rpn_post_nms_top_n,
        "rpn_nms_threshold": cfg.rpn_nms_threshold,
        "score_threshold": cfg.score_threshold,
        "nms_threshold": cfg.nms_threshold,
        "max_detections": cfg.max_detections,
        "roi_align_aligned": False,  # torchvision's MultiScaleRoIAlign
        "roi_sampling_ratio": 2,
        "mask_size": 28,
        "class_agnostic_masks": cfg.class_agnostic_masks,
        "test_time_flip": cfg.test_time_flip,
        "input_scale": cfg.input_scale,
        "bn_eps": BN_EPS,
    }


def preprocess(gray: torch.Tensor, cfg: MaskRCNNConfig) -> torch.Tensor:
    """(H, W) uint8 -> (in_channels, H, W) float in [0, 1]; the model's transform normalises and pads."""
    return (gray.float() / 255.0)[None].expand(cfg.in_channels, -1, -1).contiguous()


@dataclass
class Detections:
    """One pass's detections in tile pixels: boxes (N, 4) x0 y0 x1 y1, scores (N,), labels (N,)
    0-based over the cell classes, probabilities (N, classes) of the proposal each came from, and
    masks (N, M, M) as probabilities over each box."""
    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    probabilities: torch.Tensor
    masks: torch.Tensor

    def mirrored(self, width: float) -> "Detections":
        """The same detections seen in the tile mirrored left-right (x -> width - x)."""
        b = self.boxes
        boxes = torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], 1)
        return Detections(boxes, self.scores, self.labels, self.probabilities, self.masks.flip(-1))


def select_detections(model: MaskRCNN, class_logits, box_regression, proposals, image_size):
    """torchvision's postprocess_detections, re-derived so each detection keeps the proposal it
    came from: (boxes, scores, labels 1..n, the proposal's softmax over the cell classes)."""
    from torchvision.ops import boxes as box_ops
    import torch.nn.functional as F

    rh = model.roi_heads
    P, n = class_logits.shape
    soft = F.softmax(class_logits, -1)
    dec = rh.box_coder.decode(box_regression, proposals)
    dec = box_ops.clip_boxes_to_image(dec, image_size)[:, 1:].reshape(-1, 4)
    sc = soft[:, 1:].reshape(-1)
    src = torch.arange(P)[:, None].expand(P, n - 1).reshape(-1)
    lab = torch.arange(1, n)[None].expand(P, n - 1).reshape(-1)
    keep = torch.where(sc > rh.score_thresh)[0]
    dec, sc, src, lab = dec[keep], sc[keep], src[keep], lab[keep]
    keep = box_ops.remove_small_boxes(dec, 1e-2)
    dec, sc, src, lab = dec[keep], sc[keep], src[keep], lab[keep]
    keep = box_ops.batched_nms(dec, sc, lab, rh.nms_thresh)[: rh.detections_per_img]
    return dec[keep], sc[keep], lab[keep], soft[src[keep], 1:]


@torch.no_grad()
def detect(model: MaskRCNN, x: torch.Tensor) -> Detections:
    """torchvision's inference up to the M x M masks (before they are pasted into the tile), with
    each detection's class probabilities: the softmax of its proposal over the cell classes."""
    from torchvision.models.detection.roi_heads import maskrcnn_inference

    rh = model.roi_heads
    images, _ = model.transform([x])
    features = model.backbone(images.tensors)
    proposals, _ = model.rpn(images, features)
    box_features = rh.box_head(rh.box_roi_pool(features, proposals, images.image_sizes))
    class_logits, box_regression = rh.box_predictor(box_features)
    dec, sc, lab, fg = select_detections(model, class_logits, box_regression, proposals, images.image_sizes[0])
    mask_logits = rh.mask_predictor(rh.mask_head(rh.mask_roi_pool(features, [dec], images.image_sizes)))
    masks = maskrcnn_inference(mask_logits, [lab])[0][:, 0]
    # back to tile pixels as torchvision's postprocess does (masks are relative to their boxes)
    from torchvision.models.detection.transform import resize_boxes
    dec = resize_boxes(dec, images.image_sizes[0], list(x.shape[-2:]))
    return Detections(dec, sc, lab - 1, fg / fg.sum(1, keepdim=True), masks)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import box_iou as iou
    return iou(a, b)


def resample_mask(mask: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """An M x M mask over box `source` sampled (bilinear, edges held) at the cell centres of an
    M x M grid over box `target`."""
    M = mask.shape[-1]
    centres = (torch.arange(M, dtype=torch.float32) + 0.5) / M

    def coords(lo_t, hi_t, lo_s, hi_s):
        pos = lo_t + centres * (hi_t - lo_t)
        g = ((pos - lo_s) / max(float(hi_s - lo_s), 1e-6) * M - 0.5).clamp(0, M - 1)
        i0 = g.floor().long().clamp(max=M - 2) if M > 1 else g.floor().long()
        return i0, g - i0

    x0, fx = coords(target[0], target[2], source[0], source[2])
    y0, fy = coords(target[1], target[3], source[1], source[3])
    top = mask[y0][:, x0] * (1 - fx) + mask[y0][:, x0 + 1] * fx
    bottom = mask[y0 + 1][:, x0] * (1 - fx) + mask[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


def fuse_flip(a: Detections, b: Detections, match_iou: float = 0.5, limit: int | None = None) -> Detections:
    """Horizontal-flip test-time augmentation: `a` from the tile, `b` from its mirror image already
    mirrored back. In `a`'s score order each detection pairs with the unpaired one of `b` of the
    same class whose box overlaps it most (IoU > match_iou); a pair becomes one detection with
    the mean box, score and probabilities and the mean of both masks resampled onto that box. A
    detection only one pass made keeps half its score. Sorted by score, best `limit` kept."""
    iou = box_iou(a.boxes, b.boxes) if len(a.scores) and len(b.scores) else torch.zeros(len(a.scores), len(b.scores))
    iou = torch.where(a.labels[:, None] == b.labels[None, :], iou, torch.zeros_like(iou))
    taken = torch.zeros(len(b.scores), dtype=torch.bool)
    pairs = []
    for i in sorted(range(len(a.scores)), key=lambda k: (-float(a.scores[k]), k)):
        row = torch.where(taken, torch.zeros_like(iou[i]), iou[i]) if len(b.scores) else iou[i]
        if len(row) == 0:
            continue
        j = int(torch.argmax(row))  # first of equal maxima
        if float(row[j]) > match_iou:
            taken[j] = True
            pairs.append((i, j))
    paired_a = {i for i, _ in pairs}
    boxes, scores, labels, probs, masks = [], [], [], [], []
    for i, j in pairs:
        box = (a.boxes[i] + b.boxes[j]) / 2
        boxes.append(box)
        scores.append((a.scores[i] + b.scores[j]) / 2)
        labels.append(a.labels[i])
        probs.append((a.probabilities[i] + b.probabilities[j]) / 2)
        masks.append((resample_mask(a.masks[i], a.boxes[i], box) + resample_mask(b.masks[j], b.boxes[j], box)) / 2)
    for d, alone in ((a, [i for i in range(len(a.scores)) if i not in paired_a]),
                     (b, [j for j in range(len(b.scores)) if not taken[j]])):
        for k in alone:
            boxes.append(d.boxes[k])
            scores.append(d.scores[k] / 2)
            labels.append(d.labels[k])
            probs.append(d.probabilities[k])
            masks.append(d.masks[k])
    if not boxes:
        return a
    scores_t = torch.stack(scores)
    order = sorted(range(len(scores)), key=lambda k: (-float(scores_t[k]), k))[:limit]
    pick = lambda xs: torch.stack([xs[k] for k in order])  # noqa: E731
    return Detections(pick(boxes), scores_t[order], pick(labels), pick(probs), pick(masks))


@torch.no_grad()
def detect_with_flip(model: MaskRCNN, x: torch.Tensor) -> Detections:
    """`detect` on the tile and on its mirror image, fused by `fuse_flip`."""
    width = float(x.shape[-1])
    return fuse_flip(detect(model, x), detect(model, x.flip(-1)).mirrored(width),
                     limit=model.roi_heads.detections_per_img)
