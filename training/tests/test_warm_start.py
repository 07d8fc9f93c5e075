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


def test_class_specific_mask_head_seeds_a_class_agnostic_one(tmp_path: Path):
    from archs.maskrcnn import MaskRCNNConfig
    from plateseg_train import maskrcnn
    small = asdict(MaskRCNNConfig(depth=18, base_width=8, fpn_channels=32, representation_size=64, mask_channels=32))
    torch.manual_seed(0)
    source = maskrcnn.build(small)
    path = tmp_path / "maskrcnn.safetensors"
    archs_export.export(source, archs_export.model_metadata(source), str(path))

    target = maskrcnn.build({**small, "class_agnostic_masks": True})
    warm_start(target, path)
    got, want = target.roi_heads.mask_predictor.mask_fcn_logits, source.roi_heads.mask_predictor.mask_fcn_logits
    assert got.weight.shape[0] == 1
    assert torch.allclose(got.weight, want.weight[1:].mean(0, keepdim=True))
    assert torch.allclose(got.bias, want.bias[1:].mean(0, keepdim=True))
    # every class reads the one channel: the same logits whatever the label
    x = torch.randn(2, 32, 14, 14)
    logits = target.roi_heads.mask_predictor(x)
    assert logits.shape[1] == 4 and torch.equal(logits[:, 1], logits[:, 3])

    exported = tmp_path / "agnostic.safetensors"
    archs_export.export(target, archs_export.model_metadata(target), str(exported))
    # the other way (one channel into a class-specific head) is refused by name
    with pytest.raises(SystemExit, match="class_agnostic_masks"):
        warm_start(maskrcnn.build(small), exported)
    arch, reloaded = archs_export.load_model(str(exported))
    assert reloaded.cfg.class_agnostic_masks
    assert torch.equal(reloaded.roi_heads.mask_predictor.mask_fcn_logits.weight, got.weight)


def test_a_file_without_boundary_seeds_a_boundary_run(tmp_path: Path):
    torch.manual_seed(0)
    source = upernet.build(asdict(upernet.default_config(False)))
    path = tmp_path / "upernet.safetensors"
    archs_export.export(source, archs_export.model_metadata(source), str(path))

    target = upernet.build(asdict(upernet.default_config(True)))
    warm_start(target, path)
    got, want = target.decode_head.conv_seg, source.decode_head.conv_seg
    assert got.weight.shape[0] == 5
    assert torch.equal(got.weight[:4], want.weight) and torch.equal(got.bias[:4], want.bias)
    assert not got.weight[4].any()
    # the widened network still calls every pixel what the file called it
    source.eval(), target.eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        before, after = source.predict(x), target.predict(x)
    assert torch.equal(after[:, :4].argmax(1), before.argmax(1))
    assert after[:, 4].max() < 0.05

    # the other way (dropping a class) is still refused
    exported = tmp_path / "boundary.safetensors"
    archs_export.export(target, archs_export.model_metadata(target), str(exported))
    with pytest.raises(SystemExit, match="architecture differs"):
        warm_start(upernet.build(asdict(upernet.default_config(False))), exported)
