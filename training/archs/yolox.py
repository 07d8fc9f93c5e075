"""YOLOX (Ge et al., 2021) as a plain PyTorch module whose state_dict names match Megvii's YOLOX
repository (backbone.backbone.stem.conv.conv.weight, backbone.lateral_conv0, head.stems.0, ...),
so a checkpoint trained there loads here and in the Swift engine without renaming.

Input: (N, in_channels, H, W) with H and W multiples of 32, already normalised (see
`preprocess`). `forward` returns the raw head maps; `decode` and `postprocess` turn them into boxes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

BN_EPS = 1e-3  # Megvii's BaseConv uses eps=1e-3, momentum=0.03

CLASSES = ["shsy5y", "astro", "cort"]

# depth, width multipliers of the official sizes
SIZES = {
    "nano": (0.33, 0.25, True),
    "tiny": (0.33, 0.375, False),
    "s": (0.33, 0.50, False),
    "m": (0.67, 0.75, False),
    "l": (1.0, 1.0, False),
    "x": (1.33, 1.25, False),
}


@dataclass
class YOLOXConfig:
    depth: float = 0.33
    width: float = 0.50
    depthwise: bool = False
    in_channels: int = 1
    classes: list = field(default_factory=lambda: list(CLASSES))
    strides: list = field(default_factory=lambda: [8, 16, 32])
    # input = (pixel / 255 - mean) / std; Megvii feeds raw 0..255, i.e. mean 0, std 1/255
    mean: list = field(default_factory=lambda: [0.0])
    std: list = field(default_factory=lambda: [1.0 / 255.0])
    pad_value: float = 114.0  # pixel value of the bottom/right padding to a multiple of 32
    score_threshold: float = 0.3
    nms_threshold: float = 0.45
    max_detections: int = 1000

    @staticmethod
    def named(size: str, **kw) -> "YOLOXConfig":
        d, w, dw = SIZES[size]
        return YOLOXConfig(depth=d, width=w, depthwise=dw, **kw)


class BaseConv(nn.Module):
    """conv (no bias) -> BN -> activation."""

    def __init__(self, cin, cout, ksize, stride=1, groups=1, act="silu"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ksize, stride, (ksize - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.03)
        self.act = nn.SiLU() if act == "silu" else nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    def __init__(self, cin, cout, ksize, stride=1):
        super().__init__()
        self.dconv = BaseConv(cin, cin, ksize, stride, groups=cin)
        self.pconv = BaseConv(cin, cout, 1, 1)

    def forward(self, x):
        return self.pconv(self.dconv(x))


def conv3(depthwise):
    return DWConv if depthwise else BaseConv


class Bottleneck(nn.Module):
    def __init__(self, cin, cout, shortcut=True, expansion=0.5, depthwise=False):
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = conv3(depthwise)(hidden, cout, 3, 1)
        self.use_add = shortcut and cin == cout

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    def __init__(self, cin, cout, n=1, shortcut=True, expansion=0.5, depthwise=False):
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = BaseConv(cin, hidden, 1, 1)
        self.conv3 = BaseConv(2 * hidden, cout, 1, 1)
        self.m = nn.Sequential(*[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise) for _ in range(n)])

    def forward(self, x):
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], dim=1))


class SPPBottleneck(nn.Module):
    def __init__(self, cin, cout, kernel_sizes=(5, 9, 13)):
        super().__init__()
        hidden = cin // 2
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in kernel_sizes])
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), cout, 1, 1)

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [m(x) for m in self.m], dim=1))


def space_to_depth(x):
    """Focus: the four pixel phases stacked as channels, in Megvii's order."""
    return torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], dim=1)


class Focus(nn.Module):
    def __init__(self, cin, cout, ksize=1, stride=1):
        super().__init__()
        self.conv = BaseConv(cin * 4, cout, ksize, stride)

    def forward(self, x):
        return self.conv(space_to_depth(x))


class CSPDarknet(nn.Module):
    def __init__(self, depth, width, in_channels=3, depthwise=False):
        super().__init__()
        Conv = conv3(depthwise)
        base = int(width * 64)
        n = max(round(depth * 3), 1)
        self.stem = Focus(in_channels, base, ksize=3)
        self.dark2 = nn.Sequential(Conv(base, base * 2, 3, 2), CSPLayer(base * 2, base * 2, n, depthwise=depthwise))
        self.dark3 = nn.Sequential(Conv(base * 2, base * 4, 3, 2), CSPLayer(base * 4, base * 4, n * 3, depthwise=depthwise))
        self.dark4 = nn.Sequential(Conv(base * 4, base * 8, 3, 2), CSPLayer(base * 8, base * 8, n * 3, depthwise=depthwise))
        self.dark5 = nn.Sequential(
            Conv(base * 8, base * 16, 3, 2),
            SPPBottleneck(base * 16, base * 16),
            CSPLayer(base * 16, base * 16, n, shortcut=False, depthwise=depthwise),
        )

    def forward(self, x):
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        c5 = self.dark5(c4)
        return c3, c4, c5


class YOLOPAFPN(nn.Module):
    def __init__(self, depth, width, in_channels=3, depthwise=False):
        super().__init__()
        Conv = conv3(depthwise)
        c3, c4, c5 = (int(c * width) for c in (256, 512, 1024))
        n = round(3 * depth)
        self.backbone = CSPDarknet(depth, width, in_channels, depthwise)
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, False, depthwise=depthwise)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, False, depthwise=depthwise)
        self.bu_conv2 = Conv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False, depthwise=depthwise)
        self.bu_conv1 = Conv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False, depthwise=depthwise)

    def forward(self, x):
        x2, x1, x0 = self.backbone(x)
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([up(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([up(fpn_out1), x2], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0


class YOLOXHead(nn.Module):
    def __init__(self, num_classes, width, depthwise=False):
        super().__init__()
        Conv = conv3(depthwise)
        hidden = int(256 * width)
        self.stems = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        for c in (256, 512, 1024):
            self.stems.append(BaseConv(int(c * width), hidden, 1, 1))
            self.cls_convs.append(nn.Sequential(Conv(hidden, hidden, 3, 1), Conv(hidden, hidden, 3, 1)))
            self.reg_convs.append(nn.Sequential(Conv(hidden, hidden, 3, 1), Conv(hidden, hidden, 3, 1)))
            self.cls_preds.append(nn.Conv2d(hidden, num_classes, 1))
            self.reg_preds.append(nn.Conv2d(hidden, 4, 1))
            self.obj_preds.append(nn.Conv2d(hidden, 1, 1))
        self.init_priors()

    def init_priors(self, prior_prob=1e-2):
        b = -math.log((1 - prior_prob) / prior_prob)
        for conv in list(self.cls_preds) + list(self.obj_preds):
            nn.init.constant_(conv.bias, b)

    def forward(self, feats):
        """Per level: (N, 4 + 1 + C, H, W) = box regression, objectness logit, class logits."""
        outs = []
        for k, x in enumerate(feats):
            x = self.stems[k](x)
            cls_feat = self.cls_convs[k](x)
            reg_feat = self.reg_convs[k](x)
            outs.append(torch.cat([self.reg_preds[k](reg_feat), self.obj_preds[k](reg_feat), self.cls_preds[k](cls_feat)], 1))
        return outs


class YOLOX(nn.Module):
    def __init__(self, cfg: YOLOXConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = YOLOPAFPN(cfg.depth, cfg.width, cfg.in_channels, cfg.depthwise)
        self.head = YOLOXHead(len(cfg.classes), cfg.width, cfg.depthwise)

    def forward(self, x):
        """Raw head maps per stride (logits, before sigmoid and grid decode)."""
        return self.head(self.backbone(x))

    def metadata(self) -> dict:
        c = self.cfg
        return {
            "arch": "yolox",
            "depth": c.depth,
            "width": c.width,
            "depthwise": c.depthwise,
            "in_channels": c.in_channels,
            "classes": c.classes,
            "strides": c.strides,
            "mean": c.mean,
            "std": c.std,
            "pad_value": c.pad_value,
            "pad_multiple": 32,
            "score_threshold": c.score_threshold,
            "nms_threshold": c.nms_threshold,
            "max_detections": c.max_detections,
            "bn_eps": BN_EPS,
            "activation": "silu",
        }


def preprocess(gray: torch.Tensor, cfg: YOLOXConfig) -> torch.Tensor:
    """(H, W) uint8 -> (1, in_channels, H', W') normalised, padded bottom/right to a multiple of 32."""
    h, w = gray.shape
    ph, pw = (32 - h % 32) % 32, (32 - w % 32) % 32
    x = F.pad(gray.float()[None, None], (0, pw, 0, ph), value=cfg.pad_value) / 255.0
    mean = torch.tensor(cfg.mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std).view(1, -1, 1, 1)
    x = x.expand(1, cfg.in_channels, -1, -1)
    return (x - mean) / std


def decode(outs, strides):
    """Raw maps -> (A, 4 + 1 + C): boxes as (cx, cy, w, h) in input pixels, sigmoid obj and classes.
    Anchor order: level, then row, then column (as Megvii)."""
    rows = []
    for o, s in zip(outs, strides):
        n, c, h, w = o.shape
        o = o[0].permute(1, 2, 0).reshape(h * w, c)
        yv, xv = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grid = torch.stack((xv, yv), 2).reshape(-1, 2).float()
        xy = (o[:, :2] + grid) * s
        wh = torch.exp(o[:, 2:4]) * s
        rows.append(torch.cat([xy, wh, o[:, 4:].sigmoid()], 1))
    return torch.cat(rows, 0)


def postprocess(decoded, cfg: YOLOXConfig, image_size):
    """-> boxes (x0, y0, x1, y1) clipped to the unpadded image, scores = obj x best class, labels,
    class probabilities (sigmoids normalised to sum 1). Class-aware NMS, score-descending; boxes
    left with no area after clipping are dropped, then at most max_detections are kept."""
    cx, cy, w, h = decoded[:, 0], decoded[:, 1], decoded[:, 2], decoded[:, 3]
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    obj = decoded[:, 4]
    cls = decoded[:, 5:]
    conf, labels = cls.max(1)
    scores = obj * conf
    keep = scores >= cfg.score_threshold
    boxes, scores, labels, cls = boxes[keep], scores[keep], labels[keep], cls[keep]
    keep = torchvision.ops.batched_nms(boxes, scores, labels, cfg.nms_threshold)
    boxes, scores, labels, cls = boxes[keep], scores[keep], labels[keep], cls[keep]
    H, W = image_size
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, W)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, H)
    # boxes wholly outside the image (in the padding) have no area left
    keep = ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).nonzero()[:, 0][: cfg.max_detections]
    probs = cls[keep] / cls[keep].sum(1, keepdim=True)
    return boxes[keep], scores[keep], labels[keep], probs


def config_dict(cfg: YOLOXConfig) -> dict:
    return asdict(cfg)
