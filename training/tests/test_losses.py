"""SimOTA assignment and the training losses of the three networks on a real crop."""
from dataclasses import asdict

import numpy as np
import torch

from plateseg_train import data, upernet, yolox


def test_simota_assigns_the_anchors_that_fit_a_box():
    strides = torch.full((16,), 8.0)
    grid = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="xy"),
                       -1).reshape(-1, 2)
    centres = (grid + 0.5) * 8
    gt = torch.tensor([[8.0, 8.0, 16.0, 16.0]])  # covers exactly the cell at (1, 1): anchor 5
    pred = torch.cat([centres - 4, centres + 4], 1)  # every anchor predicts its own cell
    obj = torch.zeros(16)
    cls = torch.zeros(16, 3)
    fg, matched, ious = yolox.simota(pred, obj, cls, gt, torch.tensor([1]), centres, strides)
    assert fg.nonzero().squeeze(1).tolist() == [5]
    assert matched.tolist() == [0] and torch.allclose(ious, torch.ones(1))


def test_simota_gives_a_contested_anchor_to_one_box_only():
    centres = torch.tensor([[12.0, 12.0], [20.0, 12.0]])
    strides = torch.full((2,), 8.0)
    gt = torch.tensor([[8.0, 8.0, 16.0, 16.0], [9.0, 8.0, 17.0, 16.0]])
    pred = torch.tensor([[8.0, 8.0, 16.0, 16.0], [30.0, 30.0, 31.0, 31.0]])
    fg, matched, _ = yolox.simota(pred, torch.zeros(2), torch.zeros(2, 3), gt,
                                  torch.tensor([0, 0]), centres, strides)
    assert fg.tolist() == [True, False] and matched.tolist() == [0]


def real_records(n=4):
    recs = data.split(data.load_records(), "train")
    return [r for r in recs if r.cell_type == "shsy5y"][:n]


def test_yolox_losses_fall_when_fitting_one_real_batch():
    torch.manual_seed(0)
    recs = real_records()
    bank = data.ImageBank(recs)
    model = yolox.build(asdict(yolox.default_config("nano")))
    fn = yolox.make_batch_fn(recs, bank, 2, seed=0)
    batch = fn(0)
    assert batch[0].shape[-1] in yolox.SCALES and all(len(t[0]) for t in batch[1])
    loss_fn = yolox.loss_fn_for(model.cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(8):
        losses = loss_fn(model, batch)
        total = sum(losses.values())
        first = first if first is not None else float(total.detach())
        opt.zero_grad()
        total.backward()
        opt.step()
    assert float(total.detach()) < first


def test_upernet_targets_and_loss_on_a_real_crop():
    torch.manual_seed(0)
    recs = real_records(2)
    bank = data.ImageBank(recs)
    cfg = upernet.default_config(boundary=True)
    model = upernet.build(asdict(cfg))
    x, y = upernet.make_batch_fn(recs, bank, 128, 2, 0, True, model.cfg)(0)
    assert x.shape == (2, 1, 128, 128) and y.shape == (2, 128, 128)
    present = set(np.unique(y.numpy()).tolist())
    assert {0, 1, 4} <= present and present <= {0, 1, 4}  # shsy5y only, with boundaries
    losses = upernet.loss_fn(model, (x, y))
    assert set(losses) == {"loss_ce", "loss_aux"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_maskrcnn_gives_astrocytes_their_own_crop_size():
    from plateseg_train import maskrcnn
    recs = [r for r in data.split(data.load_records(log=lambda *a: None), "train")
            if r.cell_type in ("astro", "cort")]
    recs = [r for r in recs if r.cell_type == "astro"][:1] + [r for r in recs if r.cell_type == "cort"][:1]
    bank = data.ImageBank(recs)
    fn = maskrcnn.make_batch_fn(recs, bank, 128, 8, 0, crop_astro=256)
    images, targets = fn(0)
    sizes = {tuple(x.shape[1:]) for x in images}
    assert sizes == {(128, 128), (256, 256)}  # both types drawn in a batch of 8
    for x, t in zip(images, targets):
        assert t["masks"].shape[1:] == x.shape[1:]
        if len(t["boxes"]):
            assert float(t["boxes"][:, 2:].max()) <= x.shape[-1]
