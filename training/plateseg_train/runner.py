"""The iteration loop shared by the three networks: seed, LR schedule, logging, checkpoints, resume.

A run lives in training/runs/<name>/: log.txt, last.pt (model + optimizer + step, rewritten every
few minutes and on SIGTERM/SIGINT) and best.pt (the weights with the best validation score).
Each step draws its batch from a generator seeded by (seed, step), so a resumed run sees exactly
the batches an uninterrupted one would have.
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data import RUNS_DIR


@dataclass
class Schedule:
    total_steps: int
    lr: float
    warmup_steps: int = 150
    final_fraction: float = 0.05  # cosine ends at lr * final_fraction

    def at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (0.01 + 0.99 * step / self.warmup_steps)
        t = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.lr * (self.final_fraction + (1 - self.final_fraction) * 0.5 *
                          (1 + math.cos(math.pi * t)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def step_rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])


class Log:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "a", buffering=1)

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")


def file_sha256(path: Path) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def warm_start(model: torch.nn.Module, path: Path) -> None:
    """Loads exported weights into `model`, refusing a file whose architecture differs.

    Shipped networks exist only as safetensors (runs/ is not in git), so continuing one on a new
    machine starts here. f16 and int8 files are widened to the model's dtype."""
    from archs import export as archs_export
    if not path.is_file():
        raise SystemExit(f"--init {path}: no such file")
    meta, tensors = archs_export.read(str(path))
    ours = archs_export.model_metadata(model)
    # the score threshold is chosen at export and does not shape the network; fields newer than
    # the file are left to the tensor shapes, which load_state_dict checks
    ignore = {"format_version", "score_threshold"}
    # nor does the input scale: convolutions take any scale, and continuing a file at a larger
    # one is how a scaled network is made
    ignore.add("input_scale")
    # a class-specific mask head may seed a class-agnostic one (the model's `adapt_init` folds
    # it), not the other way
    if ours.get("class_agnostic_masks") and not meta.get("class_agnostic_masks"):
        ignore.add("class_agnostic_masks")
    # likewise a semantic network may gain the boundary class (`adapt_init` adds its channel)
    if ours.get("classes") == meta.get("classes", []) + ["boundary"]:
        ignore |= {"classes", "semantic_channels"}
    diff = sorted(k for k in set(meta) & set(ours) if k not in ignore and meta[k] != ours[k])
    if "arch" not in meta and "arch" in ours:
        diff.append("arch")
    if diff:
        raise SystemExit(f"--init {path}: architecture differs from this run's in {diff}; "
                         "train from scratch or pass the matching options")
    adapt = getattr(model, "adapt_init", None)
    if adapt is not None:
        tensors = adapt(tensors)
    state = model.state_dict()
    loaded = {k: v.to(state[k].dtype) for k, v in tensors.items() if k in state}
    missing, unexpected = model.load_state_dict(loaded, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")
               and not k.startswith("auxiliary_head.")]
    unexpected = [k for k in tensors if k not in state]
    if missing or unexpected:
        raise SystemExit(f"--init {path}: tensors missing {missing[:5]} unexpected {unexpected[:5]}")


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class LoopConfig:
    name: str
    seed: int = 1234
    checkpoint_minutes: float = 5.0
    eval_minutes: float = 40.0  # validation costs minutes on one core: not too often
    log_every: int = 20
    grad_clip: float = 10.0


def run(cfg: LoopConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
        schedule: Schedule, arch: dict, batch_fn: Callable[[int], object],
        loss_fn: Callable[[torch.nn.Module, object], dict],
        eval_fn: Callable[[torch.nn.Module], dict] | None, log: Log,
        stop_at: float | None = None, init: str | None = None) -> None:
    """Train until schedule.total_steps (or the wall-clock `stop_at`), resuming from last.pt.

    `init` (a safetensors file written by export_models) seeds a *new* run's weights; it is
    ignored once last.pt exists, so the same command resumes."""
    run_dir = RUNS_DIR / cfg.name
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    step, best_score, trained_s = 0, -1.0, 0.0
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best_score = state["step"], state.get("best_score", -1.0)
        trained_s = state.get("trained_s", 0.0)
        log(f"resumed {last} at step {step} (trained {trained_s / 3600:.2f} h, "
            f"best val {best_score:.4f})")
    else:
        log(f"new run {cfg.name}: {json.dumps(asdict(cfg))} arch {json.dumps(arch)} "
            f"schedule {json.dumps(asdict(schedule))}")
        if init:
            warm_start(model, Path(init))
            log(f"weights from {init} (sha256 {file_sha256(Path(init))[:16]}); optimizer fresh")

    stopping = {"signal": None}

    def on_signal(signum, _frame):
        stopping["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def save(path=last, **extra):
        atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step, "best_score": best_score, "trained_s": trained_s,
                     "arch": arch, **extra}, path)

    def validate():
        nonlocal best_score
        if eval_fn is None:
            return
        t0 = time.time()
        model.eval()
        with torch.no_grad():
            result = eval_fn(model)
        model.train()
        log(f"val step {step}: {json.dumps(result)} ({time.time() - t0:.0f}s)")
        if result["all"] > best_score:
            best_score = result["all"]
            atomic_save({"model": model.state_dict(), "step": step, "val": result,
                         "trained_s": trained_s, "arch": arch}, best)
            log(f"new best {best_score:.4f} -> {best}")

    model.train()
    last_ckpt = last_eval = time.time()
    window: dict[str, float] = {}
    window_t, window_n = time.time(), 0
    while step < schedule.total_steps:
        t_step = time.time()
        lr = schedule.at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        batch = batch_fn(step)
        losses = loss_fn(model, batch)
        total = sum(losses.values())
        if not torch.isfinite(total):
            log(f"step {step}: non-finite loss {({k: float(v) for k, v in losses.items()})}, "
                "batch skipped")
            optimizer.zero_grad(set_to_none=True)
            step += 1
            continue
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        trained_s += time.time() - t_step
        for k, v in losses.items():
            window[k] = window.get(k, 0.0) + float(v.detach())
        window_n += 1
        if step % cfg.log_every == 0:
            dt = (time.time() - window_t) / window_n
            parts = " ".join(f"{k} {v / window_n:.4f}" for k, v in window.items())
            log(f"step {step}/{schedule.total_steps} lr {lr:.2e} {parts} {dt:.2f}s/it")
            window, window_t, window_n = {}, time.time(), 0
        now = time.time()
        if now - last_ckpt > cfg.checkpoint_minutes * 60:
            save()
            last_ckpt = now
        if eval_fn is not None and now - last_eval > cfg.eval_minutes * 60:
            validate()
            save()
            last_eval = time.time()
        if stopping["signal"] is not None or (stop_at is not None and now > stop_at):
            save()
            log(f"stopped at step {step} ({'signal ' + str(stopping['signal']) if stopping['signal'] else 'time limit'}); "
                f"resume with the same command")
            return
    save()
    validate()
    save()
    log(f"finished {schedule.total_steps} steps")


def evaluate_checkpoint(args, records, build: Callable, evaluate: Callable) -> None:
    """The `eval` command of every network: load `args.checkpoint`, score it on `args.split`
    (first `args.limit` images), print the result as JSON and, with `args.json`, save it."""
    from . import data

    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    model = build(state["arch"])
    model.load_state_dict(state["model"])
    model.eval()
    recs = data.split(records, args.split)[:args.limit]
    bank = data.ImageBank(recs)
    t0 = time.time()
    result = evaluate(model, recs, bank)
    result.update(checkpoint=str(args.checkpoint), step=state.get("step"), split=args.split,
                  seconds=round(time.time() - t0, 1))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def with_pseudo_labels(train: list, args, log: Callable, root: Path | None = None) -> list:
    """`train` plus the pseudo-labelled images `args` names (none without --pseudo-labels)."""
    from . import data

    if not args.pseudo_labels:
        return train
    pseudo = data.load_pseudo_labels(Path(args.pseudo_labels), args.pseudo_min_score, root)
    log(f"pseudo-labels: {len(pseudo)} images, {sum(len(r.clean) for r in pseudo)} cells "
        f"(score >= {args.pseudo_min_score}) from {args.pseudo_labels}")
    return train + pseudo
