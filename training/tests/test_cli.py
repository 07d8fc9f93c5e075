"""The shared trainer command line: every network gets the same options with its own defaults.

Imports only plateseg_train.cli, so it runs without torch.
"""
import pytest

from plateseg_train.cli import trainer_parser

DEFAULTS = dict(name="net", batch=3, steps=700, lr=2e-4, eval_per_type=7)


def test_train_takes_the_shared_options_with_the_networks_defaults():
    p, _, _ = trainer_parser(None, crop=192, input_scale_help="scale", **DEFAULTS)
    args = p.parse_args(["train"])
    assert vars(args) == dict(
        cmd="train", name="net", crop=192, batch=3, steps=700, lr=2e-4, input_scale=1.0, seed=1234,
        threads=1, eval_minutes=40.0, eval_per_type=7, stop_at=None, init=None,
        pseudo_labels=None, pseudo_min_score=0.5, pseudo_weight=0.5)


def test_eval_takes_the_shared_options_with_the_networks_defaults():
    p, _, _ = trainer_parser(None, score_thresh=[0.25, 0.5], **DEFAULTS)
    args = p.parse_args(["eval", "--checkpoint", "best.pt"])
    assert vars(args) == dict(cmd="eval", checkpoint="best.pt", split="val", threads=1, limit=None,
                              score_thresh=[0.25, 0.5], json=None)


def test_options_a_network_lacks_are_absent():
    p, _, _ = trainer_parser(None, **DEFAULTS)
    train = vars(p.parse_args(["train"]))
    assert "crop" not in train and "input_scale" not in train
    assert "score_thresh" not in vars(p.parse_args(["eval", "--checkpoint", "c.pt"]))


def test_given_values_are_parsed_to_their_types():
    p, _, _ = trainer_parser(None, crop=192, input_scale_help="scale", score_thresh=[0.5], **DEFAULTS)
    args = p.parse_args(["train", "--crop", "224", "--input-scale", "1.5", "--lr", "1e-3", "--threads", "2",
                         "--pseudo-labels", "cells.csv", "--pseudo-min-score", "0.4"])
    assert (args.crop, args.input_scale, args.lr, args.threads) == (224, 1.5, 1e-3, 2)
    assert (args.pseudo_labels, args.pseudo_min_score) == ("cells.csv", 0.4)
    args = p.parse_args(["eval", "--checkpoint", "c.pt", "--limit", "4", "--score-thresh", "0.3", "0.6"])
    assert (args.limit, args.score_thresh) == (4, [0.3, 0.6])


def test_eval_needs_a_checkpoint():
    p, _, _ = trainer_parser(None, **DEFAULTS)
    with pytest.raises(SystemExit):
        p.parse_args(["eval"])


def test_a_network_adds_its_own_options():
    p, t, e = trainer_parser(None, **DEFAULTS)
    t.add_argument("--size", default="tiny", choices=["nano", "tiny", "s"])
    e.add_argument("--flip", action="store_true")
    assert p.parse_args(["train", "--size", "s"]).size == "s"
    assert p.parse_args(["eval", "--checkpoint", "c.pt", "--flip"]).flip
    with pytest.raises(SystemExit):
        p.parse_args(["eval", "--checkpoint", "c.pt", "--size", "s"])
