"""int8 weight files: quantised per output channel, read back as the floats the engine computes with."""
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from archs import export as archs_export
from archs.yolox import preprocess
from plateseg_train import yolox
from plateseg_train.runner import warm_start


def test_int8_file_is_a_quarter_of_float32_and_computes_nearly_the_same(tmp_path: Path):
    torch.manual_seed(0)
    model = yolox.build(asdict(yolox.default_config("nano"))).eval()
    meta = archs_export.model_metadata(model)
    f32, int8 = tmp_path / "f32.safetensors", tmp_path / "int8.safetensors"
    archs_export.export(model, meta, str(f32), dtype=torch.float32)
    stored = archs_export.export(model, meta, str(int8), dtype=torch.int8)
    assert int8.stat().st_size < 0.3 * f32.stat().st_size

    with safe_open(str(int8), "pt") as f:
        raw = {k: f.get_tensor(k) for k in f.keys()}
    stem = "backbone.backbone.stem.conv.conv.weight"
    assert raw[stem].dtype == torch.float16  # 12 x 4 x 3 x 3 = 432 values: too small to quantise
    big = [k for k, v in raw.items() if v.dtype == torch.int8]
    assert big and all(raw[k + "_scale"].shape == (raw[k].shape[0],) for k in big)
    # each output channel uses the full int8 range, so its error is at most half a step
    for k in big:
        w = model.state_dict()[k]
        step = raw[k + "_scale"].view((-1,) + (1,) * (w.dim() - 1))
        assert ((stored[k] - w).abs() <= step / 2 + 1e-7).all(), k
        assert raw[k].abs().flatten(1).amax(1).eq(127).all(), k

    _, reloaded = archs_export.load_model(str(int8))
    gray = torch.randint(0, 256, (96, 128), dtype=torch.uint8)
    with torch.no_grad():
        x = preprocess(gray, model.cfg)
        for a, b in zip(model(x), reloaded(x)):
            assert torch.allclose(a, b, atol=0.05 * float(a.abs().max()) + 1e-3)

    target = yolox.build(asdict(yolox.default_config("nano")))
    warm_start(target, int8)
    assert torch.equal(target.state_dict()[big[0]], stored[big[0]])


def test_int8_without_its_scales_is_refused():
    with pytest.raises(ValueError, match="w_scale"):
        archs_export.dequantize({"w": torch.ones(2, 3, dtype=torch.int8)})
