"""Continuing a shipped network from its safetensors file (runs/ does not travel between machines)."""
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from archs import export as archs_export
from plateseg_train import upernet, yolox
from plateseg_train.runner import warm_start


def test_warm_start_loads_exported_weights_and_refuses_another_architecture(tmp_path: Path):
    torch.manual_seed(0)
    source = yolox.build(asdict(yolox.default_config("nano")))
    path = tmp_path / "yolox.safetensors"
    archs_export.export(source, archs_export.model_metadata(source), str(path), dtype=torch.float16)

    torch.manual_seed(1)
    target = yolox.build(asdict(yolox.default_config("nano")))
    warm_start(target, path)
    for name, value in source.state_dict().items():
        if value.is_floating_point():
            # stored as float16, widened on load
            assert torch.equal(target.state_dict()[name], value.half().float()), name

    with pytest.raises(SystemExit, match="architecture differs"):
        warm_start(yolox.build(asdict(yolox.default_config("tiny"))), path)
    with pytest.raises(SystemExit, match="architecture differs"):
        warm_start(upernet.build(asdict(upernet.default_config(False))), path)
    with pytest.raises(SystemExit, match="no such file"):
        warm_start(target, tmp_path / "missing.safetensors")
