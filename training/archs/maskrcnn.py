"""Mask R-CNN (He et al., 2017) built from torchvision's `MaskRCNN` with a ResNet-18/34/50 FPN body,
so tensor names are torchvision's `maskrcnn_resnet50_fpn` family (backbone.body.*, backbone.fpn.*,
rpn.head.*, roi_heads.box_head.fc6/fc7, roi_heads.box_predictor.*, roi_heads.mask_head.*,
roi_heads.mask_predictor.*).

Differences from torchvision's defaults, all recorded in the exported metadata:
- 1 input channel (gray) by default, or gray replicated to 3 (in_channels=3, e.g. ImageNet weights);
- anchors sized for 10-60 px cells;
- the tile is never resized (torchvision would rescale to min_size/max_size); it is only padded to
  a multiple of 32, so boxes come out in tile pixels;
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


class NoResizeTransform(GeneralizedRCNNTransform):
    """Normalise and pad to 32 like torchvision, but keep the tile's own scale."""

    def resize(self, image, target=None):
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
    model.transform = NoResizeTransform(min_size=520, max_size=704, image_mean=cfg.mean, image_std=cfg.std)
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
        "bn_eps": BN_EPS,
    }


def preprocess(gray: torch.Tensor, cfg: MaskRCNNConfig) -> torch.Tensor:
    """(H, W) uint8 -> (in_channels, H, W) float in [0, 1]; the model's transform normalises and pads."""
    return (gray.float() / 255.0)[None].expand(cfg.in_channels, -1, -1).contiguous()
