"""The command line the three trainers share: `train` and `eval` with the options common to every
network, each network's defaults passed in. Each trainer's main() adds its own options on top.

Kept free of torch so the options can be checked (tests/test_cli.py) without it.
"""
from __future__ import annotations

import argparse


def trainer_parser(description: str | None, *, name: str, batch: int, steps: int, lr: float,
                   eval_per_type: int, crop: int | None = None, input_scale_help: str | None = None,
                   score_thresh: list[float] | None = None):
    """`(parser, train, eval)`: the parser and its two subcommand parsers.

    `crop`, `input_scale_help` and `score_thresh` are None for a network without that option:
    YOLOX sizes its own inputs (Mosaic, multi-scale), UPerNet's output has no scores to threshold.
    """
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train")
    t.add_argument("--name", default=name)
    if crop is not None:
        t.add_argument("--crop", type=int, default=crop)
    t.add_argument("--batch", type=int, default=batch)
    t.add_argument("--steps", type=int, default=steps)
    t.add_argument("--lr", type=float, default=lr)
    if input_scale_help is not None:
        t.add_argument("--input-scale", type=float, default=1.0, help=input_scale_help)
    t.add_argument("--seed", type=int, default=1234,
                   help="crops are drawn from (seed, step): give a continuation a new seed so it sees new ones")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--eval-minutes", type=float, default=40.0)
    t.add_argument("--eval-per-type", type=int, default=eval_per_type)
    t.add_argument("--stop-at", default=None, help="UTC HH:MM: checkpoint and exit then")
    add_pseudo_label_args(t)
    t.add_argument("--init", default=None,
                   help="start a new run from these exported weights (models/<net>.safetensors)")

    e = sub.add_parser("eval")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--split", default="val")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--limit", type=int, default=None, help="first N images only (smoke checks)")
    if score_thresh is not None:
        e.add_argument("--score-thresh", type=float, nargs="+", default=score_thresh)
    e.add_argument("--json", default=None, help="write the result here")
    return p, t, e


def add_pseudo_label_args(parser) -> None:
    """The pseudo-label options (training/README.md, "Pseudo-labels"), read by runner.with_pseudo_labels."""
    parser.add_argument("--pseudo-labels", default=None, metavar="CELLS_CSV",
                        help="plateseg's cell export (`plateseg export --format csv`) of the "
                             "split=unlabeled images: their cells train as annotations")
    parser.add_argument("--pseudo-min-score", type=float, default=0.5,
                        help="pseudo-label cells scored below this are left out")
    parser.add_argument("--pseudo-weight", type=float, default=0.5,
                        help="how often a pseudo-labelled image is drawn against an annotated one")
