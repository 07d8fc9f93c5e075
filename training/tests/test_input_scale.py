"""Mask R-CNN's fixed input scale: the network sees the tile scaled, boxes come back in tile pixels."""
import torch

from archs import maskrcnn as M


def small_model(scale: float):
    torch.manual_seed(0)
    cfg = M.MaskRCNNConfig(depth=18, base_width=8, fpn_channels=16, representation_size=32, mask_channels=16,
                           score_threshold=0.0, rpn_pre_nms_top_n=100, rpn_post_nms_top_n=50, max_detections=20,
                           input_scale=scale)
    return M.build(cfg)


def square_target():
    masks = torch.zeros(2, 100, 120, dtype=torch.uint8)
    masks[0, 10:30, 20:44] = 1
    masks[1, 60:90, 70:100] = 1
    boxes = torch.tensor([[20.0, 10, 44, 30], [70.0, 60, 100, 90]])
    return {"boxes": boxes, "labels": torch.tensor([1, 3]), "masks": masks}


def test_the_transform_scales_image_boxes_and_masks():
    model = small_model(1.5)
    image = torch.rand(1, 100, 120)
    batch, targets = model.transform([image], [square_target()])
    assert batch.image_sizes[0] == (150, 180) and M.scaled_size(100, 120, 1.5) == (150, 180)
    assert targets[0]["boxes"][0].tolist() == [30, 15, 66, 45]
    assert targets[0]["masks"].shape == (2, 150, 180)
    assert int(targets[0]["masks"][0].sum()) == 30 * 36  # 20 x 24 px grown by 1.5 on each side
    plain, _ = small_model(1.0).transform([image])
    assert plain.image_sizes[0] == (100, 120)


def test_detections_come_back_in_tile_pixels_and_training_runs():
    model = small_model(1.5)
    losses = model([torch.rand(1, 100, 120)], [square_target()])
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    x = torch.rand(1, 100, 120)
    with torch.no_grad():
        full = model([x])[0]
    found = M.detect(model, x)
    assert len(full["boxes"]) > 0
    assert torch.allclose(found.boxes, full["boxes"]) and torch.equal(found.scores, full["scores"])
    assert float(found.boxes[:, 2].max()) <= 120 and float(found.boxes[:, 3].max()) <= 100
    assert full["masks"].shape[-2:] == (100, 120)


def test_upernet_sees_the_scaled_input_and_answers_at_the_tile_size(tmp_path):
    from dataclasses import asdict

    from archs import export as archs_export
    from archs import upernet as U
    from plateseg_train import upernet
    from plateseg_train.runner import warm_start

    torch.manual_seed(0)
    model = upernet.build(asdict(upernet.default_config(input_scale=1.5))).eval()
    gray = (torch.rand(100, 120) * 255).to(torch.uint8)
    x = U.preprocess(gray, model.cfg)
    assert x.shape[2:] == (150, 180)
    probs = model.predict(x, gray.shape)
    assert probs.shape == (1, 4, 100, 120)
    assert torch.allclose(probs.sum(1), torch.ones(1, 100, 120), atol=1e-5)

    # training scales only the input: the loss resizes the logits to the crop's labels
    model.train()
    losses = upernet.loss_fn(model, (U.scale_input(torch.randn(2, 1, 64, 64), 1.5), torch.randint(0, 4, (2, 64, 64))))
    assert all(torch.isfinite(v) for v in losses.values())

    # the file says so, and a native-scale file seeds a scaled run
    path = tmp_path / "upernet.safetensors"
    archs_export.export(model, archs_export.model_metadata(model), str(path))
    _, reloaded = archs_export.load_model(str(path))
    assert reloaded.cfg.input_scale == 1.5
    native = upernet.build(asdict(upernet.default_config()))
    native_path = tmp_path / "native.safetensors"
    archs_export.export(native, archs_export.model_metadata(native), str(native_path))
    warm_start(model, native_path)
    assert torch.equal(model.decode_head.conv_seg.weight, native.decode_head.conv_seg.weight)
