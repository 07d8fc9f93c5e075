"""UPerNet (Xiao et al., 2018): a ResNet backbone with torchvision's tensor names
(backbone.conv1, backbone.bn1, backbone.layer1..4, optional dilation instead of stride in the
last stages) and a decode head with mmsegmentation's UPerHead names (decode_head.psp_modules.{i}.1,
decode_head.bottleneck, decode_head.lateral_convs.{i}, decode_head.fpn_convs.{i},
decode_head.fpn_bottleneck, decode_head.conv_seg), plus mmsegmentation's FCN auxiliary head
(auxiliary_head.*, training only). Every ConvModule is conv (no bias) -> BN -> ReLU.

Output: per-pixel logits over ["background"] + classes at 1/4 resolution; `predict` upsamples
bilinearly (align_corners=False) to the input size and applies softmax.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-5
CLASSES = ["shsy5y", "astro", "cort"]


@dataclass
class UPerNetConfig:
    depth: int = 50  # 18, 34, 50, 101
    # torchvision's replace_stride_with_dilation for layer2, layer3, layer4
    dilation: list = field(default_factory=lambda: [False, True, True])
    base_width: int = 64  # stem width; 64 is the standard ResNet
    channels: int = 512  # UPerHead width
    aux_channels: int = 256
    pool_scales: list = field(default_factory=lambda: [1, 2, 3, 6])
    in_channels: int = 1
    classes: list = field(default_factory=lambda: list(CLASSES))
    # input = (pixel / 255 - mean) / std
    mean: list = field(default_factory=lambda: [0.5])
    std: list = field(default_factory=lambda: [0.25])
    # the tile is scaled by this (bilinear, after normalising) before the network, and the logits
    # are resized straight back to the tile: above 1 small cells span more output pixels
    input_scale: float = 1.0
    # inference also runs on the mirror image and averages both looks' probabilities
    # (predict_tile); the engine reads it too
    test_time_flip: bool = False


def conv_module(cin, cout, k, padding=0):
    """mmcv ConvModule layout: .conv, .bn, ReLU."""
    m = nn.Module()
    m.conv = nn.Conv2d(cin, cout, k, padding=padding, bias=False)
    m.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
    return m


def run_conv_module(m, x):
    return F.relu(m.bn(m.conv(x)))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + idt)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4, eps=BN_EPS)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + idt)


LAYERS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
          50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3])}


class ResNet(nn.Module):
    """torchvision-named ResNet body returning C2..C5."""

    def __init__(self, depth=50, in_channels=3, dilation=(False, False, False), base_width=64):
        super().__init__()
        block, counts = LAYERS[depth]
        self.inplanes = base_width
        self.dilation = 1
        self.conv1 = nn.Conv2d(in_channels, base_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width, eps=BN_EPS)
        # relu and maxpool are modules so torchvision's IntermediateLayerGetter (Mask R-CNN) can walk the body
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, base_width, counts[0])
        self.layer2 = self._make_layer(block, base_width * 2, counts[1], 2, dilation[0])
        self.layer3 = self._make_layer(block, base_width * 4, counts[2], 2, dilation[1])
        self.layer4 = self._make_layer(block, base_width * 8, counts[3], 2, dilation[2])
        self.out_channels = [base_width * m * block.expansion for m in (1, 2, 4, 8)]

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        previous = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion, eps=BN_EPS))
        layers = [block(self.inplanes, planes, stride, downsample, previous)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


def resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UPerHead(nn.Module):
    def __init__(self, in_channels, channels, num_classes, pool_scales=(1, 2, 3, 6)):
        super().__init__()
        self.pool_scales = list(pool_scales)
        self.psp_modules = nn.ModuleList(
            [nn.Sequential(nn.AdaptiveAvgPool2d(s), conv_module(in_channels[-1], channels, 1)) for s in pool_scales])
        self.bottleneck = conv_module(in_channels[-1] + len(pool_scales) * channels, channels, 3, 1)
        self.lateral_convs = nn.ModuleList([conv_module(c, channels, 1) for c in in_channels[:-1]])
        self.fpn_convs = nn.ModuleList([conv_module(channels, channels, 3, 1) for _ in in_channels[:-1]])
        self.fpn_bottleneck = conv_module(len(in_channels) * channels, channels, 3, 1)
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def psp_forward(self, x):
        outs = [x] + [resize(run_conv_module(m[1], m[0](x)), x.shape[2:]) for m in self.psp_modules]
        return run_conv_module(self.bottleneck, torch.cat(outs, 1))

    def forward(self, feats):
        laterals = [run_conv_module(m, feats[i]) for i, m in enumerate(self.lateral_convs)]
        laterals.append(self.psp_forward(feats[-1]))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [run_conv_module(self.fpn_convs[i], laterals[i]) for i in range(len(laterals) - 1)]
        outs.append(laterals[-1])
        outs = [outs[0]] + [resize(o, outs[0].shape[2:]) for o in outs[1:]]
        x = run_conv_module(self.fpn_bottleneck, torch.cat(outs, 1))
        return self.conv_seg(self.dropout(x))


class FCNHead(nn.Module):
    """mmsegmentation FCNHead with num_convs=1, concat_input=False (auxiliary, on C4)."""

    def __init__(self, cin, channels, num_classes):
        super().__init__()
        self.convs = nn.Sequential(conv_module(cin, channels, 3, 1))
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        return self.conv_seg(self.dropout(run_conv_module(self.convs[0], x)))


class UPerNet(nn.Module):
    def __init__(self, cfg: UPerNetConfig):
        super().__init__()
        self.cfg = cfg
        n = len(cfg.classes) + 1
        self.backbone = ResNet(cfg.depth, cfg.in_channels, tuple(cfg.dilation), cfg.base_width)
        oc = self.backbone.out_channels
        self.decode_head = UPerHead(oc, cfg.channels, n, cfg.pool_scales)
        self.auxiliary_head = FCNHead(oc[2], cfg.aux_channels, n)

    def forward(self, x):
        """Training: (main logits, auxiliary logits) at 1/4 and 1/8 (or 1/16) resolution.
        Eval: main logits only."""
        feats = self.backbone(x)
        out = self.decode_head(feats)
        if self.training:
            return out, self.auxiliary_head(feats[2])
        return out

    @torch.no_grad()
    def predict(self, x, size=None):
        """Per-pixel probabilities, background first, at `size` (the tile's (H, W); default the
        input's, which is the tile's when `input_scale` is 1)."""
        logits = self.forward(x)
        return torch.softmax(resize(logits, size or x.shape[2:]), 1)

    def metadata(self) -> dict:
        c = self.cfg
        return {
            "arch": "upernet",
            "depth": c.depth,
            "dilation": c.dilation,
            "base_width": c.base_width,
            "channels": c.channels,
            "pool_scales": c.pool_scales,
            "in_channels": c.in_channels,
            "classes": c.classes,
            "semantic_channels": ["background"] + c.classes,
            "mean": c.mean,
            "std": c.std,
            "input_scale": c.input_scale,
            "test_time_flip": c.test_time_flip,
            "bn_eps": BN_EPS,
        }


@torch.no_grad()
def predict_tile(model: UPerNet, gray: torch.Tensor) -> torch.Tensor:
    """What the engine stores for a (H, W) uint8 tile: probabilities (1, classes, H, W), with
    test-time flip the mean of the tile's and its mirror image's (mirrored back)."""
    x = preprocess(gray, model.cfg)
    probs = model.predict(x, gray.shape)
    if model.cfg.test_time_flip:
        probs = 0.5 * (probs + model.predict(preprocess(gray.flip(-1), model.cfg), gray.shape).flip(-1))
    return probs


def preprocess(gray: torch.Tensor, cfg: UPerNetConfig) -> torch.Tensor:
    """(H, W) uint8 -> (1, in_channels, H', W') normalised, then scaled by `input_scale` to
    `scaled_size`. No padding: every layer takes any size."""
    x = gray.float()[None, None] / 255.0
    mean = torch.tensor(cfg.mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std).view(1, -1, 1, 1)
    return scale_input(((x - mean) / std).expand(1, cfg.in_channels, -1, -1).contiguous(), cfg.input_scale)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The network's input size for a tile; the engine rounds the same way (half up)."""
    return int(height * scale + 0.5), int(width * scale + 0.5)


def scale_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """A normalised (N, C, H, W) batch at the network's input size."""
    if scale == 1:
        return x
    return resize(x, scaled_size(x.shape[2], x.shape[3], scale))
