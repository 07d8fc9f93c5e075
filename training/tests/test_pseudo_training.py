"""Pseudo-labelled images reach every trainer's batches with their image's cell type."""
import argparse
from dataclasses import asdict

import numpy as np
import pytest
import torch

from plateseg_train import data, runner
from plateseg_train import maskrcnn as train_maskrcnn
from plateseg_train import upernet as train_upernet
from plateseg_train import yolox as train_yolox
from support import coco_rle

CLASS = {"shsy5y": 1, "astro": 2, "cort": 3}


@pytest.fixture
def pseudo_setup(tmp_path):
    """One unlabeled SH-SY5Y image whose export calls every cell astro."""
    (tmp_path / "images.csv").write_text(
        "id,cell_type,annotated,n_cells,split,eval_mini,known_issue,annotation_sources\n"
        "u1,shsy5y,0,,unlabeled,0,,\n")
    rows = []
    for y in range(10, data.HEIGHT - 20, 30):  # a grid of 12 px cells: any crop holds whole ones
        for x in range(10, data.WIDTH - 20, 30):
            cell = np.zeros((data.HEIGHT, data.WIDTH), dtype=bool)
            cell[y:y + 12, x:x + 12] = True
            rows.append(f"p,,,u1.png,astro,0.9,144,{coco_rle(cell)}")
    cells = tmp_path / "cells.csv"
    cells.write_text("plate,well,field,image,cell_type,score,area,rle\n" + "\n".join(rows) + "\n")
    args = argparse.Namespace(pseudo_labels=str(cells), pseudo_min_score=0.5, pseudo_weight=0.5)
    return args, tmp_path


def test_pseudo_labels_join_the_training_records_only_when_asked(pseudo_setup):
    args, root = pseudo_setup
    logged = []
    train = runner.with_pseudo_labels([], args, logged.append, root)
    assert [(r.id, r.cell_type, r.split) for r in train] == [("u1", "shsy5y", data.PSEUDO_SPLIT)]
    assert "pseudo-labels: 1 images" in logged[0]
    args.pseudo_labels = None
    assert runner.with_pseudo_labels([], args, logged.append, root) == []


def test_every_trainer_accepts_the_pseudo_label_options(capsys):
    for trainer in (train_maskrcnn, train_upernet, train_yolox):
        with pytest.raises(SystemExit) as stop:
            trainer.main(["train", "--help"])
        assert stop.value.code == 0
        options = capsys.readouterr().out
        for option in ("--pseudo-labels", "--pseudo-min-score", "--pseudo-weight"):
            assert option in options, f"{trainer.__name__} train has no {option}"


def test_each_trainer_draws_pseudo_cells_with_the_images_type(pseudo_setup):
    args, root = pseudo_setup
    records = runner.with_pseudo_labels([], args, lambda _: None, root)
    bank = {"u1": np.full((data.HEIGHT, data.WIDTH), 128, dtype=np.uint8)}

    cfg = train_upernet.build(asdict(train_upernet.default_config())).cfg
    x, y = train_upernet.make_batch_fn(records, bank, 128, 2, 7, False, cfg, 0.5)(0)
    assert set(torch.unique(y).tolist()) == {0, CLASS["shsy5y"]}

    images, targets = train_maskrcnn.make_batch_fn(records, bank, 128, 2, 7, pseudo_weight=0.5)(0)
    for t in targets:
        assert len(t["labels"]) > 0 and set(t["labels"].tolist()) == {CLASS["shsy5y"]}

    images, targets = train_yolox.make_batch_fn(records, bank, 2, 7, pseudo_weight=0.5)(0)
    for boxes, classes in targets:  # YOLOX counts classes from 0
        assert len(classes) > 0 and set(classes.tolist()) == {CLASS["shsy5y"] - 1}
