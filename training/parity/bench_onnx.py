"""The ONNX Runtime side of `plateseg-bench models`.

Builds each network at its shipped size (the configurations of training/plateseg_train's
default_config: YOLOX-tiny, UPerNet R18 / 128 channels, Mask R-CNN R18-FPN with 128/256/128 heads)
with fixed-seed random weights, writes `<arch>.safetensors` (what the Swift engine loads) and
`<arch>.onnx` (the same weights) into --out, runs ONNX Runtime on one 704x520 demo tile, and prints
one JSON object: {arch: {"median_ms": ..., "runs": [...], "threads": n, "scope": "..."}}.

    python3 training/parity/bench_onnx.py --out /tmp/plateseg-bench --threads 2 --runs 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
from training.archs import export, maskrcnn, upernet, yolox  # noqa: E402
from make_fixtures import randomise  # noqa: E402

IMAGE = os.path.join(ROOT, "demo", "plate", "0f08d640930b.png")
MEAN, STD = [0.5018], [0.0529]  # gray statistics of the training split


def shipped():
    y = yolox.YOLOXConfig.named("tiny", in_channels=1, mean=MEAN, std=STD)
    u = upernet.UPerNetConfig(depth=18, dilation=[False, False, True], channels=128, aux_channels=64, mean=MEAN, std=STD)
    m = maskrcnn.MaskRCNNConfig(depth=18, fpn_channels=128, representation_size=256, mask_channels=128,
                                anchor_sizes=[12, 24, 48, 96, 192], mean=MEAN, std=STD, rpn_pre_nms_top_n=3000,
                                rpn_post_nms_top_n=2000, max_detections=1000, frozen_bn=False)
    return y, u, m


class YOLOXGraph(nn.Module):
    """Normalisation, padding and the network; raw head maps out (grid decode and NMS are not in
    the graph: ONNX Runtime has no cheap equivalent of the Swift post-processing)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, gray):
        x = yolox.preprocess(gray, self.model.cfg)
        return tuple(self.model(x))


class StaticAdaptivePool(nn.Module):
    """AdaptiveAvgPool2d as explicit bin means: the ONNX exporter refuses output sizes that do not
    divide the input, and a 704x520 tile gives C5 maps of 33x44."""

    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x):
        h, w = int(x.shape[2]), int(x.shape[3])
        s = self.size
        rows = []
        for i in range(s):
            y0, y1 = i * h // s, -(-(i + 1) * h // s)
            cols = [x[:, :, y0:y1, j * w // s:-(-(j + 1) * w // s)].mean(dim=(2, 3), keepdim=True) for j in range(s)]
            rows.append(torch.cat(cols, 3))
        return torch.cat(rows, 2)


class UPerNetGraph(nn.Module):
    """Normalisation, network, bilinear upsampling and softmax: what the Swift `run` computes."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        for m, s in zip(model.decode_head.psp_modules, model.decode_head.pool_scales):
            m[0] = StaticAdaptivePool(s)

    def forward(self, gray):
        return self.model.predict(upernet.preprocess(gray, self.model.cfg), gray.shape)


class MaskRCNNGraph(nn.Module):
    """torchvision's inference up to what the Swift engine returns: transform, RPN, box and mask
    heads with their post-processing, 28x28 mask probabilities (not pasted into the image)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, gray):
        m = self.model
        images, _ = m.transform([maskrcnn.preprocess(gray, m.cfg)])
        features = m.backbone(images.tensors)
        proposals, _ = m.rpn(images, features)
        detections, _ = m.roi_heads(features, proposals, images.image_sizes)
        d = detections[0]
        return d["boxes"], d["scores"], d["labels"], d["masks"]


def build(out_dir):
    from PIL import Image

    gray = torch.from_numpy(np.array(Image.open(IMAGE).convert("L")))
    y, u, m = shipped()
    nets = {}
    model = yolox.YOLOX(y).eval()
    randomise(model, 11)
    nets["yolox"] = (model, model.metadata(), YOLOXGraph(model))
    model = upernet.UPerNet(u).eval()
    randomise(model, 12)
    nets["upernet"] = (model, model.metadata(), UPerNetGraph(model))
    model = maskrcnn.build(m).eval()
    randomise(model, 13)
    with torch.no_grad():
        # a plausible number of detections (hundreds, as on shsy5y tiles) rather than none or all
        model.rpn.head.bbox_pred.weight.mul_(0.1)
        model.roi_heads.box_predictor.cls_score.weight.mul_(3)
    nets["maskrcnn"] = (model, maskrcnn.metadata(m), MaskRCNNGraph(model))
    for name, (model, meta, graph) in nets.items():
        st = os.path.join(out_dir, f"{name}.safetensors")
        onnx_path = os.path.join(out_dir, f"{name}.onnx")
        if not (os.path.exists(st) and os.path.exists(onnx_path)):
            export.export(model, meta, st)
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(graph, (gray,), onnx_path, opset_version=17, dynamo=False,
                                  input_names=["gray"])
    return gray


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-spin", action="store_true",
                    help="idle threads sleep instead of spinning (as oneDNN under OMP_WAIT_POLICY=PASSIVE)")
    ap.add_argument("--only", nargs="*", default=["yolox", "upernet", "maskrcnn"])
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(args.threads)
    gray = build(args.out)

    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    result = {}
    for name in args.only:
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        if args.no_spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(os.path.join(args.out, f"{name}.onnx"), so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: gray.numpy()}
        sess.run(None, feed)  # warm-up
        runs = []
        for _ in range(args.runs):
            t = time.perf_counter()
            outs = sess.run(None, feed)
            runs.append((time.perf_counter() - t) * 1000)
        detections = int(outs[0].shape[0]) if name == "maskrcnn" else None
        result[name] = {"median_ms": statistics.median(runs), "runs": runs, "threads": args.threads,
                        "detections": detections, "spinning": not args.no_spin}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
