"""state_dict -> safetensors with a `__metadata__` entry `plateseg` holding the architecture and every
hyper-parameter as JSON, so the Swift engine (`ModelLoader.load(path:)`) needs nothing else.

    python -m training.archs.export            # library use: export(model, metadata, path)
"""
from __future__ import annotations

import json

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .stamp_metadata import TRAINING_PIXEL_SIZE_UM

FORMAT_VERSION = 1
# Smaller weights (1x1 class predictors, biases, norms) stay f16: int8 would save little there.
QUANTIZE_MIN_ELEMENTS = 1024


def inference_state(model: torch.nn.Module) -> dict:
    """Tensors the Swift engine reads: drops BN counters and training-only heads."""
    out = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") or k.startswith("auxiliary_head."):
            continue
        out[k] = v.detach().contiguous()
    return out


def quantize_int8(tensors: dict) -> dict:
    """Conv and linear weights -> symmetric int8 per output channel plus `<name>_scale` (f32, one
    per output channel: scale = max |w| / 127); everything else -> f16. Read back by `dequantize`
    here and by the Swift engine's SafeTensorsFile."""
    out = {}
    for k, v in tensors.items():
        v = v.detach().float()
        if k.endswith("weight") and v.dim() >= 2 and v.numel() >= QUANTIZE_MIN_ELEMENTS:
            amax = v.flatten(1).abs().amax(1)
            scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
            shape = (-1,) + (1,) * (v.dim() - 1)
            out[k] = torch.round(v / scale.view(shape)).clamp_(-127, 127).to(torch.int8).contiguous()
            out[k + "_scale"] = scale.contiguous()
        else:
            out[k] = v.half().contiguous()
    return out


def dequantize(tensors: dict) -> dict:
    """The float tensors a file's weights stand for: int8 ones times their `_scale`, the scales
    themselves dropped, float ones as stored."""
    scales = {k + "_scale" for k, v in tensors.items() if v.dtype == torch.int8}
    out = {}
    for k, v in tensors.items():
        if k in scales:
            continue
        if v.dtype == torch.int8:
            scale = tensors.get(k + "_scale")
            if scale is None or scale.shape != (v.shape[0],):
                raise ValueError(f"{k} is int8 but has no [{v.shape[0]}] tensor {k}_scale")
            v = v.float() * scale.float().view((-1,) + (1,) * (v.dim() - 1))
        out[k] = v
    return out


def read(path: str) -> tuple[dict, dict]:
    """(the `plateseg` metadata, the tensors as the engine will compute with them)."""
    with safe_open(path, "pt") as f:
        meta = json.loads((f.metadata() or {}).get("plateseg", "{}"))
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return meta, dequantize(tensors)


def export(model: torch.nn.Module, metadata: dict, path: str, dtype: torch.dtype = torch.float32) -> dict:
    """Writes `path` (`dtype` torch.int8: see quantize_int8); returns the tensors the file stands
    for, after rounding to the stored precision, for reference runs."""
    state = inference_state(model)
    if dtype == torch.int8:
        tensors = quantize_int8(state)
    else:
        tensors = {k: v.to(dtype).contiguous() for k, v in state.items()}
    meta = dict(metadata)
    meta.setdefault("pixel_size", TRAINING_PIXEL_SIZE_UM)
    meta["format_version"] = FORMAT_VERSION
    save_file(tensors, path, metadata={"plateseg": json.dumps(meta, sort_keys=True)})
    return dequantize(tensors)


def load_model(path: str) -> tuple[str, torch.nn.Module]:
    """(arch, the eval-mode torch model a safetensors file describes, with its weights as stored)."""
    import dataclasses
    from . import maskrcnn, upernet, yolox
    meta, tensors = read(path)
    arch = meta.get("arch")
    kinds = {"yolox": (yolox.YOLOXConfig, yolox.YOLOX), "upernet": (upernet.UPerNetConfig, upernet.UPerNet),
             "maskrcnn": (maskrcnn.MaskRCNNConfig, maskrcnn.build)}
    if arch not in kinds:
        raise ValueError(f"{path}: metadata names arch {arch!r}; expected one of {sorted(kinds)}")
    config_type, make = kinds[arch]
    fields = {f.name for f in dataclasses.fields(config_type)}
    model = make(config_type(**{k: v for k, v in meta.items() if k in fields})).eval()
    state = model.state_dict()
    unknown = sorted(set(tensors) - set(state))
    missing = sorted(set(inference_state(model)) - set(tensors))
    if unknown or missing:
        raise ValueError(f"{path}: tensors the {arch} model does not have: {unknown[:5]}; "
                         f"tensors the file lacks: {missing[:5]}")
    state.update({k: v.to(state[k].dtype) for k, v in tensors.items()})
    model.load_state_dict(state)
    return arch, model


def model_metadata(model) -> dict:
    """Metadata of a YOLOX / UPerNet (method) or torchvision Mask R-CNN built by maskrcnn.build."""
    if hasattr(model, "metadata") and callable(model.metadata):
        return model.metadata()
    from . import maskrcnn
    return maskrcnn.metadata(model.cfg)
