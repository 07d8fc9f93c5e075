"""state_dict -> safetensors with a `__metadata__` entry `plateseg` holding the architecture and every
hyper-parameter as JSON, so the Swift engine (`ModelLoader.load(path:)`) needs nothing else.

    python -m training.archs.export            # library use: export(model, metadata, path)
"""
from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

FORMAT_VERSION = 1


def inference_state(model: torch.nn.Module) -> dict:
    """Tensors the Swift engine reads: drops BN counters and training-only heads."""
    out = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") or k.startswith("auxiliary_head."):
            continue
        out[k] = v.detach().contiguous()
    return out


def export(model: torch.nn.Module, metadata: dict, path: str, dtype: torch.dtype = torch.float32) -> dict:
    """Writes `path`; returns the tensors written (after the dtype cast) for reference runs."""
    tensors = {k: v.to(dtype).contiguous() for k, v in inference_state(model).items()}
    meta = dict(metadata)
    meta["format_version"] = FORMAT_VERSION
    save_file(tensors, path, metadata={"plateseg": json.dumps(meta, sort_keys=True)})
    return tensors


def model_metadata(model) -> dict:
    """Metadata of a YOLOX / UPerNet (method) or torchvision Mask R-CNN built by maskrcnn.build."""
    if hasattr(model, "metadata") and callable(model.metadata):
        return model.metadata()
    from . import maskrcnn
    return maskrcnn.metadata(model.cfg)
