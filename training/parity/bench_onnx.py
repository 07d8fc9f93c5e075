"""The ONNX Runtime side of `plateseg-bench models`.

For each network, `<arch>.safetensors` in --dir is what both sides run: a folder of model files
(`models/`, the shipped weights) or, where the file is missing, a network at its shipped size (the
configurations of training/plateseg_train's default_config: YOLOX-tiny, UPerNet R18 / 128
channels, Mask R-CNN R18-FPN with 128/256/128 heads) with fixed-seed random weights, written
there first. The weights go to ONNX (cached in --cache by the file's hash), ONNX Runtime runs
them on one 704x520 demo tile, and one JSON object is printed:
{arch: {"median_ms": ..., "runs": [...], "threads": n, "int8_median_ms": ..., ...}}.

With --int8, ONNX Runtime's own static quantisation of the same weights (QDQ, s8 weights per
output channel, u8 activations, percentile ranges) is calibrated on the images that
`<arch>.int8.json` in --dir names (the engine's int8 calibration images), read from
--calibration-images, and timed too.

    python3 training/parity/bench_onnx.py --dir models --threads 2 --runs 5 --int8
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
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
    """Normalisation, network, bilinear upsampling and softmax, and the mirrored pass where the file
    asks for test-time flip: what the Swift `run` computes."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        for m, s in zip(model.decode_head.psp_modules, model.decode_head.pool_scales):
            m[0] = StaticAdaptivePool(s)

    def forward(self, gray):
        return upernet.predict_tile(self.model, gray)


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


def random_networks(out_dir, names):
    """Writes `<arch>.safetensors` with fixed-seed random weights for each of `names` missing there."""
    y, u, m = shipped()
    for name in names:
        path = os.path.join(out_dir, f"{name}.safetensors")
        if os.path.exists(path):
            continue
        if name == "yolox":
            model = yolox.YOLOX(y).eval()
            randomise(model, 11)
            meta = model.metadata()
        elif name == "upernet":
            model = upernet.UPerNet(u).eval()
            randomise(model, 12)
            meta = model.metadata()
        else:
            model = maskrcnn.build(m).eval()
            randomise(model, 13)
            with torch.no_grad():
                # a plausible number of detections (hundreds, as on shsy5y tiles) rather than none or all
                model.rpn.head.bbox_pred.weight.mul_(0.1)
                model.roi_heads.box_predictor.cls_score.weight.mul_(3)
            meta = maskrcnn.metadata(m)
        export.export(model, meta, path)


def onnx_file(weights, cache, gray):
    """The network of `weights` as ONNX (exported once per content hash into `cache`)."""
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    arch, model = export.load_model(weights)
    path = os.path.join(cache, f"{arch}-{digest}.onnx")
    if not os.path.exists(path):
        graph = {"yolox": YOLOXGraph, "upernet": UPerNetGraph, "maskrcnn": MaskRCNNGraph}[arch](model)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (gray,), path, opset_version=17, dynamo=False, input_names=["gray"])
    return path


class ImageReader:
    """ONNX Runtime's calibration input: one gray image at a time."""

    def __init__(self, paths, name):
        self.paths, self.name = list(paths), name

    def get_next(self):
        if not self.paths:
            return None
        return {self.name: gray_of(self.paths.pop(0))}


def gray_of(path):
    from PIL import Image

    return np.array(Image.open(path).convert("L"))


def int8_file(fp32_path, ranges_file, images_dir, percentile):
    """ONNX Runtime's static int8 quantisation of `fp32_path`, calibrated on the images the
    engine's ranges file names (cached beside the fp32 file)."""
    from onnxruntime.quantization import CalibrationMethod, QuantType, create_calibrator
    from onnxruntime.quantization.calibrate import HistogramCollector
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    import onnx

    # u8 activations with s8 weights: ONNX Runtime's fast form on x86 (VNNI); its default, s8
    # activations, ran YOLOX 2.9x slower here.
    activations = QuantType.QUInt8

    with open(ranges_file) as f:
        names = json.load(f)["images"]
    path = fp32_path[:-len(".onnx")] + f".int8-{activations.name}-p{percentile}-{len(names)}.onnx"
    if os.path.exists(path):
        return path, names
    paths = [os.path.join(images_dir, n) for n in names]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise SystemExit(f"{missing[0]}: calibration image named by {ranges_file} not found; pass --calibration-images")
    quantized_ops = ["Conv", "ConvTranspose", "Gemm", "MatMul"]

    class NonEmptyCollector(HistogramCollector):
        """Skips empty tensors (a mask head's input on an image without detections at one level),
        which ONNX Runtime's collector cannot take."""

        def collect(self, name_to_arr):
            kept = {k: [a for a in v if a.size] for k, v in name_to_arr.items()}
            return super().collect({k: v for k, v in kept.items() if v})

    with tempfile.TemporaryDirectory() as tmp:
        calibrator = create_calibrator(fp32_path, quantized_ops, augmented_model_path=os.path.join(tmp, "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.Percentile,
                                       extra_options={"percentile": percentile})
        calibrator.set_execution_providers(["CPUExecutionProvider"])
        calibrator.collector = NonEmptyCollector(method=calibrator.method, symmetric=calibrator.symmetric,
                                                 num_bins=calibrator.num_bins, num_quantized_bins=calibrator.num_quantized_bins,
                                                 percentile=calibrator.percentile, scenario=calibrator.scenario)
        input_name = onnx.load(fp32_path, load_external_data=False).graph.input[0].name
        for p in paths:  # one image per pass: the histograms accumulate, the activations do not
            calibrator.collect_data(ImageReader([p], input_name))
        ranges = calibrator.compute_data()
    model = onnx.load(fp32_path)
    quantizer = QDQQuantizer(model, True, False, QuantType.QInt8, activations, ranges, [], [], quantized_ops, {})
    quantizer.quantize_model()
    quantizer.model.save_model_to_file(path, False)
    return path, names


def time_session(path, gray, args):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if args.no_spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: gray}
    sess.run(None, feed)  # warm-up
    runs = []
    for _ in range(args.runs):
        t = time.perf_counter()
        outs = sess.run(None, feed)
        runs.append((time.perf_counter() - t) * 1000)
    return runs, outs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="folder of <arch>.safetensors (random ones are written where missing)")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "plateseg-bench-onnx"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-spin", action="store_true",
                    help="idle threads sleep instead of spinning (as oneDNN under OMP_WAIT_POLICY=PASSIVE)")
    ap.add_argument("--only", nargs="*", default=["yolox", "upernet", "maskrcnn"])
    ap.add_argument("--int8", action="store_true", help="also ONNX Runtime's static int8 quantisation, where --dir has <arch>.int8.json")
    ap.add_argument("--calibration-images", default=os.path.join(ROOT, "..", "shared", "data", "sartorius", "images", "train"))
    ap.add_argument("--percentile", type=float, default=99.99)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    os.makedirs(args.cache, exist_ok=True)
    torch.set_num_threads(args.threads)
    random_networks(args.dir, args.only)
    gray = gray_of(IMAGE)

    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    result = {}
    for name in args.only:
        fp32 = onnx_file(os.path.join(args.dir, f"{name}.safetensors"), args.cache, torch.from_numpy(gray))
        runs, outs = time_session(fp32, gray, args)
        entry = {"median_ms": statistics.median(runs), "runs": runs, "threads": args.threads,
                 "detections": int(outs[0].shape[0]) if name == "maskrcnn" else None, "spinning": not args.no_spin}
        ranges = os.path.join(args.dir, f"{name}.int8.json")
        if args.int8 and os.path.exists(ranges):
            quantized, images = int8_file(fp32, ranges, args.calibration_images, args.percentile)
            runs, outs = time_session(quantized, gray, args)
            entry.update(int8_median_ms=statistics.median(runs), int8_runs=runs, int8_calibration_images=len(images),
                         int8_detections=int(outs[0].shape[0]) if name == "maskrcnn" else None)
        result[name] = entry
    print(json.dumps(result))


if __name__ == "__main__":
    main()
