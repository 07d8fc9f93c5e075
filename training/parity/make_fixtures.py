"""Parity fixtures for the Swift engine (Tests/ModelsTests/Fixtures).

Each architecture is built small, with fixed-seed random weights and batch norms whose statistics
are far from identity, exported with training/archs/export.py (YOLOX in f16, UPerNet in bf16,
Mask R-CNN in f32, so all three dtypes go through the reader), and run here on a crop of a real
demo image. The reference runs on the weights as stored (after the dtype cast). Outputs go to
`<arch>.expected.safetensors`: raw head outputs and post-processed results.

    python3 training/parity/make_fixtures.py      # from the repository root, ~1 minute
"""
from __future__ import annotations

import copy
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from training.archs import export, maskrcnn, upernet, yolox  # noqa: E402

OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")
IMAGE = os.path.join(ROOT, "demo", "plate", "0f08d640930b.png")
# x, y, width, height: not multiples of 32, so padding and odd feature sizes are exercised
CROP = (160, 120, 250, 180)


def tile() -> torch.Tensor:
    img = np.array(Image.open(IMAGE).convert("L"))
    x, y, w, h = CROP
    return torch.from_numpy(img[y:y + h, x:x + w].copy())


def randomise(model: nn.Module, seed: int):
    """Kaiming-scaled weights (so activations neither vanish nor explode through the depth) and
    non-identity batch norm statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                fan_in = m.weight[0].numel() if not isinstance(m, nn.ConvTranspose2d) else m.weight.shape[0] * m.weight[0, 0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d) or type(m).__name__ == "FrozenBatchNorm2d":
                n = m.weight.shape[0]
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)


def reload(model: nn.Module, tensors: dict):
    """Puts the weights as stored (after the dtype cast) back into the model."""
    state = model.state_dict()
    for k, v in tensors.items():
        state[k] = v.float()
    model.load_state_dict(state)


def write(name: str, model: nn.Module, meta: dict, dtype, expected: dict):
    tensors = export.export(model, meta, os.path.join(OUT, f"{name}.safetensors"), dtype)
    assert set(tensors) == set(export.inference_state(model))
    info = {"crop": list(CROP), "image": os.path.relpath(IMAGE, ROOT)}
    save_file({k: v.detach().float().contiguous() for k, v in expected.items()},
              os.path.join(OUT, f"{name}.expected.safetensors"), metadata={"plateseg": json.dumps(info)})


def make_yolox(name="yolox", depthwise=False):
    cfg = yolox.YOLOXConfig(depth=0.33, width=0.125, depthwise=depthwise, score_threshold=0.3, nms_threshold=0.45)
    model = yolox.YOLOX(cfg).eval()
    randomise(model, 1)
    gray = tile()
    with torch.no_grad():
        # Random features are large (the input is 0..255); scale each prediction layer so the box
        # regressions stay near 0 (boxes of a few strides) and the scores spread over (0, 1).
        x = yolox.preprocess(gray, cfg)
        feats = model.backbone(x)
        for k in range(3):
            s = model.head.stems[k](feats[k])
            reg = model.head.reg_convs[k](s)
            cls = model.head.cls_convs[k](s)
            for conv, feat, target in ((model.head.reg_preds[k], reg, 0.4), (model.head.obj_preds[k], reg, 2.0),
                                       (model.head.cls_preds[k], cls, 2.0)):
                conv.bias.zero_()
                conv.weight.mul_(target / float(conv(feat).std()))
    tensors = export.export(model, model.metadata(), "/dev/null", torch.float16)
    reload(model, tensors)
    expected = yolox_reference(model, gray)
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {len(expected['boxes'])} detections")
    write(name, model, model.metadata(), torch.float16, expected)


def yolox_reference(model, gray: torch.Tensor) -> dict:
    """Raw head maps and the post-processed detections, as the engine's parity tests read them."""
    cfg = model.cfg
    with torch.no_grad():
        outs = model(yolox.preprocess(gray, cfg))
        boxes, scores, labels, probs = yolox.postprocess(yolox.decode(outs, cfg.strides), cfg, gray.shape)
    expected = {f"level{i}": o[0] for i, o in enumerate(outs)}
    expected.update(boxes=boxes, scores=scores, labels=labels.float(), probabilities=probs)
    return expected


def make_upernet():
    cfg = upernet.UPerNetConfig(depth=18, dilation=[False, True, True], base_width=16, channels=32, aux_channels=16)
    model = upernet.UPerNet(cfg).eval()
    randomise(model, 2)
    with torch.no_grad():
        model.decode_head.conv_seg.weight.mul_(3)
        model.decode_head.conv_seg.bias.zero_()
    tensors = export.export(model, model.metadata(), "/dev/null", torch.bfloat16)
    reload(model, tensors)
    expected = upernet_reference(model, tile())
    # the same network on the tile scaled by 1.5: logits at the scaled input's quarter,
    # probabilities back at the tile's size
    scaled = copy.deepcopy(model)
    scaled.cfg.input_scale = 1.5
    expected.update({f"scaled.{k}": v for k, v in upernet_reference(scaled, tile()).items()})
    # test-time flip: the mean of the tile's and its mirror image's probabilities
    flipped = copy.deepcopy(model)
    flipped.cfg.test_time_flip = True
    expected["flipped.probabilities"] = upernet_reference(flipped, tile())["probabilities"]
    probs = expected["probabilities"]
    print(f"upernet: {sum(p.numel() for p in model.parameters())} parameters, logits {tuple(expected['logits'].shape)}, "
          f"class share {[round(float((probs.argmax(0) == c).float().mean()), 3) for c in range(4)]}")
    write("upernet", model, model.metadata(), torch.bfloat16, expected)


def upernet_reference(model, gray: torch.Tensor) -> dict:
    with torch.no_grad():
        x = upernet.preprocess(gray, model.cfg)
        logits = model(x)
        probs = upernet.predict_tile(model, gray)
    return {"logits": logits[0], "probabilities": probs[0].half()}


def make_maskrcnn():
    cfg = maskrcnn.MaskRCNNConfig(depth=18, base_width=8, fpn_channels=32, representation_size=64, mask_channels=32,
                                  score_threshold=0.2, rpn_pre_nms_top_n=300, rpn_post_nms_top_n=200)
    model = maskrcnn.build(cfg).eval()
    randomise(model, 3)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(3)
        # proposals near their anchors, so NMS keeps a realistic number of them
        model.rpn.head.bbox_pred.weight.mul_(0.1)
    meta = maskrcnn.metadata(cfg)
    tensors = export.export(model, meta, "/dev/null", torch.float32)
    reload(model, tensors)
    expected = maskrcnn_reference(model, tile())
    # the same network with test-time flip: the fused detections (engine: FlipFusion)
    fused = maskrcnn.detect_with_flip(model, maskrcnn.preprocess(tile(), cfg))
    expected.update({"flip.boxes": fused.boxes, "flip.scores": fused.scores, "flip.labels": fused.labels.float(),
                     "flip.probabilities": fused.probabilities, "flip.masks": fused.masks})
    # a random network sees other cells in the mirror image, so nothing pairs above: pairing and
    # resampling are checked on the detections against a copy of them shifted by an eighth of each
    # box, rescored, with reversed probabilities and transposed masks (all 84 pair)
    a = maskrcnn.detect(model, maskrcnn.preprocess(tile(), cfg))
    size = torch.stack([a.boxes[:, 2] - a.boxes[:, 0], a.boxes[:, 3] - a.boxes[:, 1]] * 2, 1)
    b = maskrcnn.Detections(a.boxes + 0.125 * size, a.scores * 0.8, a.labels,
                            a.probabilities.flip(-1), a.masks.transpose(-1, -2))
    paired = maskrcnn.fuse_flip(a, b, limit=cfg.max_detections)
    # the same network on the tile scaled by 1.5 (boxes back in tile pixels). Here this random
    # network saturates objectness and class scores at 1, and ties leave NMS's order to the sort
    # (torch's is not stable), so those logits are scaled down by powers of two (exact in float;
    # the engine's test scales the same tensors)
    soft = copy.deepcopy(model)
    with torch.no_grad():
        for layer, factor in ((soft.rpn.head.cls_logits, 0.125), (soft.roi_heads.box_predictor.cls_score, 0.0625)):
            layer.weight.mul_(factor)
            layer.bias.mul_(factor)
    soft.transform.scale = 1.5
    scaled = maskrcnn.detect(soft, maskrcnn.preprocess(tile(), cfg))
    expected.update({"scaled.boxes": scaled.boxes, "scaled.scores": scaled.scores, "scaled.labels": scaled.labels.float(),
                     "scaled.masks": scaled.masks})
    expected.update({"pairs.boxes": paired.boxes, "pairs.scores": paired.scores, "pairs.probabilities": paired.probabilities,
                     "pairs.masks": paired.masks})
    print(f"maskrcnn: {sum(p.numel() for p in model.parameters())} parameters, {len(expected['proposals'])} proposals, "
          f"{len(expected['boxes'])} detections, {len(fused.scores)} with flip")
    write("maskrcnn", model, meta, torch.float32, expected)


def maskrcnn_reference(model, gray: torch.Tensor) -> dict:
    """Every stage the engine's Mask R-CNN parity tests compare: RPN maps, proposals, box head,
    detections with their proposal's class probabilities, 28x28 masks."""
    from torchvision.models.detection.roi_heads import maskrcnn_inference
    from torchvision.ops import boxes as box_ops

    rh = model.roi_heads
    with torch.no_grad():
        x = maskrcnn.preprocess(gray, model.cfg)
        images, _ = model.transform([x])
        features = model.backbone(images.tensors)
        feats = list(features.values())
        objectness, deltas = model.rpn.head(feats)
        proposals, _ = model.rpn(images, features)
        box_features = rh.box_head(rh.box_roi_pool(features, proposals, images.image_sizes))
        class_logits, box_regression = rh.box_predictor(box_features)
        boxes, scores, labels = rh.postprocess_detections(class_logits, box_regression, proposals, images.image_sizes)
        mask_logits = rh.mask_predictor(rh.mask_head(rh.mask_roi_pool(features, boxes, images.image_sizes)))
        masks = maskrcnn_inference(mask_logits, labels)[0][:, 0]
        full = model([x])[0]
        from torchvision.models.detection.transform import resize_boxes
        in_tile = resize_boxes(boxes[0], images.image_sizes[0], list(x.shape[-2:]))  # input_scale
        assert torch.equal(full["boxes"], in_tile) and torch.equal(full["labels"], labels[0])

        # class probabilities of each detection: the softmax of the proposal it came from, over the
        # cell classes only (torchvision's (proposal, class) selection re-derived to find it)
        dec, _, lab, fg = maskrcnn.select_detections(model, class_logits, box_regression, proposals, images.image_sizes[0])
        assert torch.equal(dec, boxes[0]) and torch.equal(lab, labels[0])
        probs = fg / fg.sum(1, keepdim=True)
    expected = {}
    for i, (o, d) in enumerate(zip(objectness, deltas)):
        expected[f"rpn.objectness{i}"] = o[0]
        expected[f"rpn.deltas{i}"] = d[0]
    expected.update({
        "proposals": proposals[0], "class_logits": class_logits, "box_regression": box_regression,
        "boxes": boxes[0], "scores": scores[0], "labels": (labels[0] - 1).float(), "probabilities": probs,
        "mask_logits": mask_logits[torch.arange(len(labels[0])), labels[0]], "masks": masks,
    })
    return expected


if __name__ == "__main__":
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    makers = {"yolox": make_yolox, "yolox_dw": lambda: make_yolox("yolox_dw", depthwise=True),
              "upernet": make_upernet, "maskrcnn": make_maskrcnn}
    for name in sys.argv[1:] or list(makers):
        makers[name]()
