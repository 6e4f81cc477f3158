"""One trial: adversarial training of one model under one configuration, one row per epoch.

`run_trial(config, report)` calls `report(row, state)` after every epoch; `state` is a
complete checkpoint (model, optimizer, λ̄, RNG, epoch, rows so far) that `run_trial(config,
report, state=...)` resumes from bit-identically on CPU. The training step never reads a
tensor on the host: metrics accumulate on the device and are read once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from trials import data as data_mod
from trials.attacks import attack_batch
from trials.config import AttackSpec, TrialConfig, resolved_eval_attack, resolved_train_attack
from trials.evaluation import final_evaluations
from trials.models import build_model, decayed_parameters
from trials.weight_decay import AdaptiveWeightDecay, FixedWeightDecay, global_norm, make_weight_decay

CHECKPOINT_FORMAT = 1
Report = Callable[[dict, dict], None]


# ------------------------------------------------------------------------------ set-up


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_factor(cfg: TrialConfig, step: int, total: int) -> float:
    """Multiplier of the peak lr before optimiser step `step` (0-based) of `total`."""
    t = cfg.train
    if t.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total))
    if t.schedule == "piecewise":
        return t.gamma ** sum(step >= m * total for m in t.milestones)
    return 1.0


@dataclass
class Trainer:
    """The live objects of a trial; `state_dict()` is its checkpoint."""

    config: TrialConfig
    device: torch.device
    data: data_mod.TrialData
    model: nn.Module
    step_model: nn.Module  # the (optionally compiled) callable used in the hot loop
    optimizer: torch.optim.Optimizer
    weight_decay: FixedWeightDecay | AdaptiveWeightDecay
    data_gen: torch.Generator
    attack_gen: torch.Generator
    autocast: contextlib.AbstractContextManager
    channels_last: bool
    steps_per_epoch: int
    epoch: int = 0
    rows: list[dict] = field(default_factory=list)
    best: dict | None = None  # {"epoch", "val_robust_acc", "model"} of the best epoch so far
    train_seconds: float = 0.0
    status: str = "running"  # running → ok | diverged
    evaluations: list[dict] = field(default_factory=list)  # final evaluations of best/last weights

    @property
    def finished(self) -> bool:
        return self.status != "running" or self.epoch >= self.config.train.epochs

    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "trial_id": self.config.trial_id,
            "status": self.status,
            "epoch": self.epoch,
            "rows": list(self.rows),
            "evaluations": list(self.evaluations),
            "label_noise_actual": self.data.label_noise_actual,
            "train_seconds": self.train_seconds,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "weight_decay": self.weight_decay.state_dict(),
            "rng": {"data": self.data_gen.get_state(), "attack": self.attack_gen.get_state(),
                    "torch": torch.get_rng_state()},
            # the best epoch's weights travel in every checkpoint, so one file holds both the
            # latest state (to resume) and the best model (to evaluate)
            "best_epoch": self.best["epoch"] if self.best else 0,
            "best_model": self.best["model"] if self.best else None,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
        if state["trial_id"] != self.config.trial_id:
            raise ValueError(f"checkpoint of trial {state['trial_id']} given to {self.config.trial_id}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.weight_decay.load_state_dict(state["weight_decay"])
        self.data_gen.set_state(state["rng"]["data"])
        self.attack_gen.set_state(state["rng"]["attack"])
        torch.set_rng_state(state["rng"]["torch"])
        self.epoch = int(state["epoch"])
        self.rows = list(state["rows"])
        self.train_seconds = float(state["train_seconds"])


def build_trainer(config: TrialConfig, device: torch.device | str | None = None,
                  data: data_mod.TrialData | None = None) -> Trainer:
    """The trial's live objects; `data` replaces the configured dataset (benchmarks on synthetic data)."""
    device = pick_device(device if isinstance(device, str) or device is None else str(device))
    data = data or data_mod.load(config.data, config.label_noise, device)
    torch.manual_seed(config.seed)  # same seed → same initialisation in every arm (paired trials)
    model = build_model(config.model, data.info).to(device)
    channels_last = config.train.channels_last if config.train.channels_last is not None \
        else device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.train.momentum,
                                nesterov=config.train.nesterov, weight_decay=0.0)
    wd = make_weight_decay(config.kind, decayed_parameters(model, config.train.decay), config.lam,
                           config.lambda_awd)
    data_gen = torch.Generator(device).manual_seed(config.seed)  # data order and augmentation
    attack_gen = torch.Generator(device).manual_seed(config.seed + 1_000_003)  # PGD random starts
    step_model = torch.compile(model) if config.train.compile else model
    steps = math.ceil(len(data.train) / config.train.batch_size)
    return Trainer(config, device, data, model, step_model, optimizer, wd, data_gen, attack_gen,
                   autocast_for(config.train.precision, device), channels_last, steps)


# ------------------------------------------------------------------------------ the loop


class StepResult(NamedTuple):
    """What one training step leaves on the device (read by nobody until the epoch ends)."""

    loss: torch.Tensor  # mean cross-entropy on the adversarial batch, before the update
    correct: torch.Tensor  # adversarial examples classified correctly, before the update
    grad_norm: torch.Tensor  # ‖g‖ of the decayed parameters before the decay was added
    lam_bar: torch.Tensor  # the λ̄ applied at this step


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer,
               weight_decay: FixedWeightDecay | AdaptiveWeightDecay, x: torch.Tensor, y: torch.Tensor,
               attack: AttackSpec, lr: float, *, generator: torch.Generator | None = None,
               autocast: contextlib.AbstractContextManager | None = None) -> StepResult:
    """One adversarial training step: attack, forward/backward on x_adv, weight decay, SGD step.

    Runs in the model's current mode (`train_epoch` sets train mode). Nothing is read on the host.
    """
    autocast = autocast or contextlib.nullcontext()
    x_adv = attack_batch(attack.kind, model, x, y, eps=attack.eps, step_size=attack.step_size, steps=attack.steps,
                         random_start=attack.random_start, generator=generator, autocast=autocast)
    with autocast:
        logits = model(x_adv)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    lam_bar = weight_decay.apply()
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    correct = (logits.detach().argmax(1) == y).sum()
    return StepResult(loss.detach(), correct, weight_decay.grad_norm, lam_bar)


def train_epoch(tr: Trainer) -> dict[str, float]:
    """One epoch of adversarial training. One host read, at the end."""
    cfg, data = tr.config, tr.data
    attack = resolved_train_attack(cfg)
    bs, n, dev = cfg.train.batch_size, len(data.train), tr.device
    total = tr.steps_per_epoch * cfg.train.epochs
    step0 = tr.epoch * tr.steps_per_epoch
    pad, flip = (data.info.pad, data.info.flip) if cfg.data.augment else (0, False)
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    grad_norm_sum = torch.zeros((), device=dev)
    lam_sum = torch.zeros((), device=dev)
    lam_min = torch.full((), math.inf, device=dev)
    lam_max = torch.full((), -math.inf, device=dev)
    tr.model.train()
    order = torch.randperm(n, generator=tr.data_gen, device=dev)
    lr_now = cfg.lr
    for i in range(tr.steps_per_epoch):
        idx = order[i * bs:(i + 1) * bs]
        xb = data.train.x[idx]
        if pad or flip:
            xb = data_mod.augment(xb, pad, flip, tr.data_gen)
        x, y = data_mod.to_float(xb, tr.channels_last), data.train.y[idx]
        lr_now = cfg.lr * lr_factor(cfg, step0 + i, total)
        out = train_step(tr.step_model, tr.optimizer, tr.weight_decay, x, y, attack, lr_now,
                         generator=tr.attack_gen, autocast=tr.autocast)
        with torch.no_grad():
            loss_sum += out.loss.float() * y.shape[0]
            correct += out.correct
            grad_norm_sum += out.grad_norm
            lam_sum += out.lam_bar
            torch.minimum(lam_min, out.lam_bar, out=lam_min)
            torch.maximum(lam_max, out.lam_bar, out=lam_max)
    k = tr.steps_per_epoch
    # the epoch's one host synchronisation
    vals = torch.stack([loss_sum / n, correct.float() / n, grad_norm_sum / k, lam_sum / k, lam_min,
                        lam_max]).tolist()
    return dict(zip(("train_loss", "train_robust_acc", "grad_norm", "lambda_mean", "lambda_min",
                     "lambda_max"), vals, strict=True)) | {"lr_now": lr_now}


def accuracy(model: nn.Module, split: data_mod.Split, attack: AttackSpec | None, batch_size: int,
             autocast: contextlib.AbstractContextManager, channels_last: bool,
             generator: torch.Generator | None = None, labels: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, robust) correct counts on `split` as device tensors; robust is 0 without attack."""
    if model.training:
        raise RuntimeError("evaluation needs the model in eval mode (BatchNorm running statistics)")
    y_all = split.y if labels is None else labels
    clean = torch.zeros((), dtype=torch.long, device=split.y.device)
    robust = torch.zeros((), dtype=torch.long, device=split.y.device)
    for start in range(0, len(split), batch_size):
        x = data_mod.to_float(split.x[start:start + batch_size], channels_last)
        y = y_all[start:start + batch_size]
        with torch.inference_mode(), autocast:
            clean += (model(x).argmax(1) == y).sum()
        if attack is not None and attack.kind != "none":
            x_adv = attack_batch(attack.kind if attack.kind != "fgsm_rs" else "pgd", model, x, y,
                                 eps=attack.eps, step_size=attack.step_size, steps=attack.steps,
                                 random_start=attack.random_start, generator=generator, autocast=autocast)
            with torch.inference_mode(), autocast:
                robust += (model(x_adv).argmax(1) == y).sum()
    return clean, robust


def evaluate_epoch(tr: Trainer) -> dict[str, float]:
    """Val/test clean and robust accuracy, train clean accuracy and memorisation of noisy labels."""
    cfg, data, ev = tr.config, tr.data, tr.config.eval
    attack = resolved_eval_attack(cfg)
    # one fixed stream for evaluation: every epoch and every arm sees the same random starts
    gen = torch.Generator(tr.device).manual_seed(cfg.data.split_seed + 7)
    tr.model.eval()
    val = data.val.take(ev.val_examples)
    test = data.test.take(ev.test_examples)
    train_sub = data.train.take(ev.train_examples if ev.train_examples is not None else len(data.val))
    args = (ev.batch_size, tr.autocast, tr.channels_last)
    counts = [*accuracy(tr.model, val, attack, *args, generator=gen),
              *accuracy(tr.model, test, attack, *args, generator=gen),
              accuracy(tr.model, train_sub, None, *args)[0]]
    sizes = [len(val), len(val), len(test), len(test), len(train_sub)]
    n_noisy = int(data.noisy.sum()) if cfg.label_noise else 0
    if n_noisy:
        idx = data.noisy.nonzero().squeeze(1)
        noisy = data_mod.Split(data.train.x[idx], data.train.y[idx])
        counts.append(accuracy(tr.model, noisy, None, *args)[0])
        sizes.append(n_noisy)
    values = (torch.stack(counts).double() / torch.tensor(sizes, dtype=torch.double,
                                                          device=tr.device)).tolist()
    out = dict(zip(("val_clean_acc", "val_robust_acc", "test_clean_acc", "test_robust_acc",
                    "train_clean_acc"), values[:5], strict=True))
    out["noisy_fit_acc"] = values[5] if n_noisy else math.nan
    if attack.kind == "none":
        out["val_robust_acc"], out["test_robust_acc"] = out["val_clean_acc"], out["test_clean_acc"]
    return out


NAN_EVAL = dict.fromkeys(("val_clean_acc", "val_robust_acc", "test_clean_acc", "test_robust_acc",
                          "train_clean_acc", "noisy_fit_acc"), math.nan)


def start_trial(config: TrialConfig, state: dict | None = None,
                device: torch.device | str | None = None) -> Trainer:
    """A trainer at epoch 0, or at the epoch of checkpoint `state`."""
    tr = build_trainer(config, device)
    if state is not None:
        tr.load_state_dict(state)
        tr.best = _best_from_rows(state)
        tr.status = state.get("status", "running")
        tr.evaluations = list(state.get("evaluations") or [])
    return tr


def step(tr: Trainer) -> tuple[dict, dict]:
    """Train and evaluate one epoch; returns (row, checkpoint). Sets `tr.status` when it ends."""
    config = tr.config
    start = time.perf_counter()
    metrics = train_epoch(tr)
    tr.epoch += 1
    loss = metrics["train_loss"]
    diverged = not (math.isfinite(loss) and math.isfinite(metrics["grad_norm"]) and loss <= config.train.max_loss)
    last = tr.epoch == config.train.epochs
    if diverged:
        evals, tr.status = NAN_EVAL, "diverged"
    elif tr.epoch % config.eval.every == 0 or last:
        evals = evaluate_epoch(tr)
    else:
        evals = NAN_EVAL
    weight_norm = global_norm([p.detach() for p in decayed_parameters(tr.model, config.train.decay)])
    seconds = time.perf_counter() - start  # the final evaluations below are not part of the epoch
    tr.train_seconds += seconds
    if last and tr.status == "running":
        tr.status = "ok"
        tr.evaluations = final_evaluations(tr, _best_candidate(tr, evals))
    row = config.key_columns() | metrics | evals | {
        "epoch": tr.epoch, "weight_norm": float(weight_norm), "epoch_seconds": seconds, "status": tr.status}
    tr.rows.append(row)
    _track_best(tr, row)
    return row, tr.state_dict()


def run_trial(config: TrialConfig, report: Report, state: dict | None = None,
              device: torch.device | str | None = None) -> dict:
    """Train to the end (or divergence), calling `report(row, checkpoint)` after every epoch.

    Returns the final checkpoint dict (its "status" is "ok" or "diverged"); a finished
    checkpoint given as `state` is returned as it is.
    """
    tr = start_trial(config, state, device)
    while not tr.finished:
        report(*step(tr))
    return tr.state_dict()


def _improves(tr: Trainer, val: float) -> bool:
    return math.isfinite(val) and (tr.best is None or val > tr.best["val_robust_acc"])


def _track_best(tr: Trainer, row: dict) -> None:
    if _improves(tr, row["val_robust_acc"]):
        tr.best = {"epoch": row["epoch"], "val_robust_acc": row["val_robust_acc"],
                   "model": copy.deepcopy(tr.model.state_dict())}


def _best_candidate(tr: Trainer, evals: dict) -> dict | None:
    """The best weights including the epoch just finished (which may itself be the best)."""
    if _improves(tr, evals["val_robust_acc"]):
        return {"epoch": tr.epoch, "val_robust_acc": evals["val_robust_acc"], "model": tr.model.state_dict()}
    return tr.best


def _best_from_rows(state: dict) -> dict | None:
    if not state.get("best_epoch"):
        return None
    val = next(r["val_robust_acc"] for r in state["rows"] if r["epoch"] == state["best_epoch"])
    return {"epoch": state["best_epoch"], "val_robust_acc": val, "model": state["best_model"]}
