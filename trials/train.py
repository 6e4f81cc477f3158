"""One trial: adversarial training of one model under one configuration, one row per epoch.

`run_trial(config, report)` calls `report(row, state)` after every epoch; `state` is a
complete checkpoint (model, optimizer, the arm's state, RNG, epoch, best weights, and with
`train.ema` the weight average and its best weights) whose size does not grow with the epochs, and
`run_trial(config, report, state=...)` resumes from it bit-identically on CPU. The training step
never reads a tensor on the host: metrics accumulate on the device and are read once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from trials import arms, selection
from trials import data as data_mod
from trials.arms.base import Hooks, global_norm
from trials.attacks import attack_batch, trades_attack
from trials.averaging import WeightAverage
from trials.config import Attack, TrialConfig, resolved_eval_attack, resolved_train_attack
from trials.evaluation import evaluate_weights, split_sums
from trials.models import build_model, decayed_parameters

CHECKPOINT_FORMAT = 2  # the weight-average keys are optional: a checkpoint without them is one without train.ema
Report = Callable[[dict, dict], None]
EVAL_SEED_OFFSET = 7  # per-epoch evaluation's attack stream: split_seed + 7, every epoch and arm alike


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


def arm_hooks(config: TrialConfig, model: nn.Module) -> Hooks:
    """The arm of `config` acting on `model`'s decayed parameters (`train.decay`); the arms that need the
    network's structure (`rescale`) also get the model, and arms with per-trial arrays the point's `series`."""
    return arms.build(config.kind, decayed_parameters(model, config.train.decay),
                      model=model if arms.takes_model(config.kind) else None, series=config.point.series,
                      **config.params)


@dataclass
class Trainer:
    """The live objects of a trial; `state_dict()` is its checkpoint."""

    config: TrialConfig
    device: torch.device
    data: data_mod.TrialData
    model: nn.Module
    step_model: nn.Module  # the (optionally compiled) callable used in the hot loop
    optimizer: torch.optim.SGD
    arm: Hooks
    data_gen: torch.Generator
    attack_gen: torch.Generator
    autocast: contextlib.AbstractContextManager
    channels_last: bool
    steps_per_epoch: int
    epoch: int = 0
    rows: list[dict] = field(default_factory=list)  # rows trained by this process (not checkpointed)
    best: dict | None = None  # {"epoch", "val_robust_acc", "model"} of the best epoch so far
    train_seconds: float = 0.0
    status: str = "running"  # running → ok | diverged
    evaluations: list[dict] = field(default_factory=list)  # final evaluations of best/last(/ema) weights
    ema: WeightAverage | None = None  # train.ema: the average of the weights
    ema_best: dict | None = None  # {"epoch", "val_robust_acc", "model"} of the average's best epoch so far

    @property
    def finished(self) -> bool:
        return self.status != "running" or self.epoch >= self.config.train.epochs

    def state_dict(self) -> dict:
        best, ema_best = self.best or {}, self.ema_best or {}
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "trial_id": self.config.trial_id,
            "status": self.status,
            "epoch": self.epoch,
            "evaluations": list(self.evaluations),
            "label_noise_actual": self.data.label_noise_actual,
            "train_seconds": self.train_seconds,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "arm": self.arm.state_dict(),
            "rng": {"data": self.data_gen.get_state(), "attack": self.attack_gen.get_state(),
                    "torch": torch.get_rng_state()},
            # the best epoch's weights travel in every checkpoint, so one file holds both the
            # latest state (to resume) and the best model (to evaluate and export)
            "best_epoch": best.get("epoch", 0),
            "best_val_robust_acc": best.get("val_robust_acc", math.nan),
            "best_model": best.get("model"),
            # train.ema: the average now (to resume) and the average of its own best epoch (to evaluate)
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "ema_best_epoch": ema_best.get("epoch", 0),
            "ema_best_val_robust_acc": ema_best.get("val_robust_acc", math.nan),
            "ema_best_model": ema_best.get("model"),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
        if state["trial_id"] != self.config.trial_id:
            raise ValueError(f"checkpoint of trial {state['trial_id']} given to {self.config.trial_id}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.arm.load_state_dict(state["arm"])
        self.data_gen.set_state(state["rng"]["data"])
        self.attack_gen.set_state(state["rng"]["attack"])
        torch.set_rng_state(state["rng"]["torch"])
        self.epoch = int(state["epoch"])
        self.train_seconds = float(state["train_seconds"])
        self.status = str(state["status"])
        self.evaluations = list(state["evaluations"])
        self.best = None
        if state["best_epoch"]:
            self.best = {"epoch": int(state["best_epoch"]), "val_robust_acc": float(state["best_val_robust_acc"]),
                         "model": state["best_model"]}
        self.ema_best = None
        if self.ema is not None:
            if state.get("ema") is None:
                raise ValueError("the checkpoint has no weight average, but train.ema is on")
            self.ema.load_state_dict(state["ema"])
            if state.get("ema_best_epoch"):
                self.ema_best = {"epoch": int(state["ema_best_epoch"]),
                                 "val_robust_acc": float(state["ema_best_val_robust_acc"]),
                                 "model": state["ema_best_model"]}


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
    # decay comes from the arm's hooks, never from the optimizer; foreach: one kernel launch per step on CUDA
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.train.momentum,
                                nesterov=config.train.nesterov, weight_decay=0.0, foreach=True)
    hooks = arm_hooks(config, model)
    data_gen = torch.Generator(device).manual_seed(config.seed)  # data order and augmentation
    attack_gen = torch.Generator(device).manual_seed(config.seed + 1_000_003)  # PGD random starts
    step_model = torch.compile(model) if config.train.compile else model
    steps = math.ceil(len(data.train) / config.train.batch_size)
    ema = config.train.ema
    average = WeightAverage.for_training(model, ema.decay, ema.start, steps * config.train.epochs) if ema else None
    return Trainer(config, device, data, model, step_model, optimizer, hooks, data_gen, attack_gen,
                   autocast_for(config.train.precision, device), channels_last, steps, ema=average)


# ------------------------------------------------------------------------------ the loop


class StepResult(NamedTuple):
    """What one training step leaves on the device (read by nobody until the epoch ends)."""

    loss: torch.Tensor  # the objective minimised: what the arm's loss hook returned, before the update
    adv_ce: torch.Tensor  # mean cross-entropy on the step's adversarial examples, before the update
    correct: torch.Tensor  # adversarial examples classified correctly, before the update
    grad_norm: torch.Tensor  # ‖g‖ of the decayed parameters before any decay was added
    stats: dict[str, torch.Tensor]  # the arm's per-step values (Hooks.step_stats)


def per_example_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack, *,
                     generator: torch.Generator | None, autocast: contextlib.AbstractContextManager,
                     freeze: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-example training losses, logits on the adversarial inputs) in the model's current mode.

    ce: cross-entropy on x_adv (the attack maximises CE). trades: CE on x plus β·KL(p(x) ‖ p(x_adv)),
    x_adv maximising the KL in eval mode (Zhang et al. 2019).
    """
    if attack.objective == "trades":
        x_adv = trades_attack(model, x, eps=attack.eps, step_size=attack.step_size, steps=attack.steps,
                              generator=generator, autocast=autocast)
        with autocast:  # two forwards, as TRADES does: each batch gets its own BatchNorm statistics
            logits_clean, logits_adv = model(x).float(), model(x_adv).float()
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="none").sum(1)
        return F.cross_entropy(logits_clean, y, reduction="none") + attack.beta * kl, logits_adv
    x_adv = attack_batch(attack.kind, model, x, y, eps=attack.eps, step_size=attack.step_size, steps=attack.steps,
                         random_start=attack.random_start, generator=generator, autocast=autocast, freeze=freeze)
    with autocast:
        logits = model(x_adv)
    return F.cross_entropy(logits.float(), y, reduction="none"), logits


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, arm: Hooks, x: torch.Tensor, y: torch.Tensor,
               attack: Attack, lr: float, lr_factor: float = 1.0, *, generator: torch.Generator | None = None,
               autocast: contextlib.AbstractContextManager | None = None, freeze: bool = True) -> StepResult:
    """One adversarial training step: attack, per-example losses, the arm's loss, backward, the arm's
    gradient hook, SGD step, the arm's parameter hook. Runs in the model's current mode (`train_epoch`
    sets train mode). Nothing is read on the host."""
    per_example, logits = per_example_loss(model, x, y, attack, generator=generator,
                                           autocast=autocast or contextlib.nullcontext(), freeze=freeze)
    with torch.no_grad():  # the CE objective's per-example losses are that CE already; TRADES' are not
        adv_ce = per_example.mean() if attack.objective != "trades" else F.cross_entropy(logits.float(), y)
    loss = arm.loss(per_example)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    arm.apply()
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    arm.after_step(lr_factor)
    correct = (logits.detach().argmax(1) == y).sum()
    return StepResult(loss.detach(), adv_ce, correct, arm.grad_norm, arm.step_stats())


class _Accumulator:
    """Per-epoch sums (and min/max of the decay coefficient) of the step results, on the device."""

    def __init__(self, device: torch.device):
        zero = torch.zeros((), device=device)
        self.loss, self.adv_ce, self.grad_norm = zero.clone(), zero.clone(), zero.clone()
        self.correct = zero.clone().long()
        self.sums: dict[str, torch.Tensor] = {}
        self.lam_min = torch.full((), math.inf, device=device)
        self.lam_max = torch.full((), -math.inf, device=device)

    @torch.no_grad()
    def add(self, out: StepResult, batch: int) -> None:
        self.loss += out.loss.float() * batch  # a batch-size-weighted mean: a short last batch counts less
        self.adv_ce += out.adv_ce.float() * batch
        self.correct += out.correct
        self.grad_norm += out.grad_norm
        for name, value in out.stats.items():
            self.sums[name] = self.sums[name] + value if name in self.sums else value.float().clone()
        lam = out.stats["lambda"]
        torch.minimum(self.lam_min, lam, out=self.lam_min)
        torch.maximum(self.lam_max, lam, out=self.lam_max)

    def read(self, n: int, steps: int) -> dict[str, float]:
        """The epoch's one host synchronisation."""
        names = sorted(self.sums)
        head = ("train_loss", "train_adv_ce", "train_robust_acc", "grad_norm", "lambda_min", "lambda_max")
        values = torch.stack([self.loss / n, self.adv_ce / n, self.correct.float() / n, self.grad_norm / steps,
                              self.lam_min, self.lam_max, *(self.sums[k] / steps for k in names)]).tolist()
        out = dict(zip(head, values, strict=False))
        out |= {("lambda_mean" if k == "lambda" else k): v for k, v in zip(names, values[len(head):], strict=True)}
        return out


def train_epoch(tr: Trainer) -> dict[str, float]:
    """One epoch of adversarial training. One host read, at the end."""
    cfg, data = tr.config, tr.data
    attack = resolved_train_attack(cfg)
    bs, n = cfg.train.batch_size, len(data.train)
    total = tr.steps_per_epoch * cfg.train.epochs
    step0 = tr.epoch * tr.steps_per_epoch
    pad, flip = (data.info.pad, data.info.flip) if cfg.data.augment else (0, False)
    acc = _Accumulator(tr.device)
    tr.arm.set_progress(tr.epoch / cfg.train.epochs, tr.epoch)
    tr.model.train()
    order = torch.randperm(n, generator=tr.data_gen, device=tr.device)
    factor = 1.0
    for i in range(tr.steps_per_epoch):
        idx = order[i * bs:(i + 1) * bs]
        xb = data.train.x[idx]
        if pad or flip:
            xb = data_mod.augment(xb, pad, flip, tr.data_gen)
        x, y = data_mod.to_float(xb, tr.channels_last), data.train.y[idx]
        factor = lr_factor(cfg, step0 + i, total)
        out = train_step(tr.step_model, tr.optimizer, tr.arm, x, y, attack, cfg.lr * factor, factor,
                         generator=tr.attack_gen, autocast=tr.autocast, freeze=not cfg.train.compile)
        if tr.ema is not None:
            tr.ema.update(step0 + i)
        acc.add(out, y.shape[0])
    return acc.read(n, tr.steps_per_epoch) | {"lr_now": cfg.lr * factor}


def _evaluation_splits(tr: Trainer) -> tuple[data_mod.Split, data_mod.Split]:
    ev = tr.config.eval
    return tr.data.val.take(ev.val_examples), tr.data.test.take(ev.test_examples)


def _evaluation_kwargs(tr: Trainer) -> dict:
    # one fixed stream for evaluation: every epoch and every arm sees the same random starts
    gen = torch.Generator(tr.device).manual_seed(tr.config.data.split_seed + EVAL_SEED_OFFSET)
    return {"batch_size": tr.config.eval.batch_size, "autocast": tr.autocast, "channels_last": tr.channels_last,
            "generator": gen}


def evaluate_epoch(tr: Trainer) -> dict[str, float]:
    """Val/test clean and robust accuracy and cross-entropy, train clean accuracy and cross-entropy, and
    memorisation of noisy labels. One host read."""
    cfg, data, ev = tr.config, tr.data, tr.config.eval
    attack = resolved_eval_attack(cfg)
    tr.model.eval()
    val, test = _evaluation_splits(tr)
    train_sub = data.train.take(ev.train_examples if ev.train_examples is not None else len(data.val))
    kw = _evaluation_kwargs(tr)
    sums = [split_sums(tr.model, val, [None, attack], **kw), split_sums(tr.model, test, [None, attack], **kw),
            split_sums(tr.model, train_sub, [None], **kw)]
    sizes = [len(val), len(val), len(test), len(test), len(train_sub)]
    n_noisy = int(data.noisy.sum()) if cfg.label_noise else 0
    if n_noisy:
        idx = data.noisy.nonzero().squeeze(1)
        sums.append(split_sums(tr.model, data_mod.Split(data.train.x[idx], data.train.y[idx]), [None], **kw))
        sizes.append(n_noisy)
    n = torch.tensor(sizes, dtype=torch.double, device=tr.device)
    correct = torch.cat([s.correct for s in sums]).double() / n
    ce = torch.cat([s.ce for s in sums[:3]]) / n[:5]
    values = torch.cat([correct, ce]).tolist()
    k = len(sizes)
    out = dict(zip(EVAL_ACCURACIES, values[:5], strict=True))
    out["noisy_fit_acc"] = values[5] if n_noisy else math.nan
    out |= dict(zip(EVAL_LOSSES, values[k:], strict=True))
    if attack.kind == "none":
        out["val_robust_acc"], out["test_robust_acc"] = out["val_clean_acc"], out["test_clean_acc"]
        out["val_robust_loss"], out["test_robust_loss"] = out["val_clean_loss"], out["test_clean_loss"]
    return out


def evaluate_average(tr: Trainer) -> dict[str, float]:
    """The val/test clean and robust accuracies of the weight average (`train.ema`), on the examples and with
    the attack stream of `evaluate_epoch`. One host read."""
    attack = resolved_eval_attack(tr.config)
    model = tr.ema.sync_buffers().eval()
    val, test = _evaluation_splits(tr)
    kw = _evaluation_kwargs(tr)
    sums = [split_sums(model, val, [None, attack], **kw), split_sums(model, test, [None, attack], **kw)]
    n = torch.tensor([len(val), len(val), len(test), len(test)], dtype=torch.double, device=tr.device)
    out = dict(zip(EMA_ACCURACIES, (torch.cat([s.correct for s in sums]).double() / n).tolist(), strict=True))
    if attack.kind == "none":
        out["ema_val_robust_acc"], out["ema_test_robust_acc"] = out["ema_val_clean_acc"], out["ema_test_clean_acc"]
    return out


EVAL_ACCURACIES = ("val_clean_acc", "val_robust_acc", "test_clean_acc", "test_robust_acc", "train_clean_acc")
EVAL_LOSSES = ("val_clean_loss", "val_robust_loss", "test_clean_loss", "test_robust_loss", "train_clean_loss")
EMA_ACCURACIES = ("ema_val_clean_acc", "ema_val_robust_acc", "ema_test_clean_acc", "ema_test_robust_acc")
NAN_EVAL = dict.fromkeys((*EVAL_ACCURACIES, "noisy_fit_acc", *EVAL_LOSSES), math.nan)
NAN_EMA = dict.fromkeys(EMA_ACCURACIES, math.nan)
# NaN where an arm logs nothing
ARM_COLUMNS = ("lambda_mean", "lambda_min", "lambda_max", "prescale_norm", "weight_concentration")


def start_trial(config: TrialConfig, state: dict | None = None,
                device: torch.device | str | None = None) -> Trainer:
    """A trainer at epoch 0, or at the epoch of checkpoint `state`."""
    tr = build_trainer(config, device)
    if state is not None:
        tr.load_state_dict(state)
    return tr


def step(tr: Trainer) -> tuple[dict, dict]:
    """Train and evaluate one epoch; returns (row, checkpoint). Sets `tr.status` when it ends."""
    config = tr.config
    start = time.perf_counter()
    metrics = train_epoch(tr)
    tr.epoch += 1
    loss = metrics["train_loss"]
    diverged = not (math.isfinite(loss) and math.isfinite(metrics["train_adv_ce"])
                    and math.isfinite(metrics["grad_norm"]) and loss <= config.train.max_loss)
    last = tr.epoch == config.train.epochs
    ema_evals = NAN_EMA
    if diverged:
        evals, tr.status = NAN_EVAL, "diverged"
    elif tr.epoch % config.eval.every == 0 or last:
        evals = evaluate_epoch(tr)
        if tr.ema is not None:
            ema_evals = evaluate_average(tr)
    else:
        evals = NAN_EVAL
    weight_norm = global_norm([p.detach() for p in decayed_parameters(tr.model, config.train.decay)])
    seconds = time.perf_counter() - start  # the final evaluations below are not part of the epoch
    tr.train_seconds += seconds
    _track_best(tr, evals["val_robust_acc"])
    _track_ema_best(tr, ema_evals["ema_val_robust_acc"])
    if last and tr.status == "running":
        tr.status = "ok"
        tr.evaluations = final_evaluations(tr, tr.best, tr.ema_best)
    row: dict[str, Any] = config.key_columns() | dict.fromkeys(ARM_COLUMNS, math.nan) | metrics | evals \
        | ema_evals | {"epoch": tr.epoch, "weight_norm": float(weight_norm), "epoch_seconds": seconds,
                       "status": tr.status}
    tr.rows.append(row)
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


def _track_best(tr: Trainer, val_robust_acc: float) -> None:
    if selection.improves(val_robust_acc, tr.best["val_robust_acc"] if tr.best else None):
        tr.best = {"epoch": tr.epoch, "val_robust_acc": val_robust_acc,
                   "model": copy.deepcopy(tr.model.state_dict())}


def _track_ema_best(tr: Trainer, ema_val_robust_acc: float) -> None:
    """The weight average's own best epoch, by the rule of `trials.selection` (first of ties)."""
    if tr.ema is not None and selection.improves(ema_val_robust_acc,
                                                 tr.ema_best["val_robust_acc"] if tr.ema_best else None):
        tr.ema_best = {"epoch": tr.epoch, "val_robust_acc": ema_val_robust_acc, "model": tr.ema.state_dict()}


def final_evaluations(tr: Trainer, best: dict | None, ema_best: dict | None = None) -> list[dict]:
    """Evaluate the last weights, the best (by val robust accuracy) weights and, with `train.ema`, the averaged
    weights of their own best epoch (by ema_val_robust_acc) of a finished trial."""
    weights = [("last", tr.epoch, tr.model.state_dict())]  # loaded into a copy: the trainer's model is not touched
    if best is not None:
        weights.append(("best", best["epoch"], best["model"]))
    if ema_best is not None:
        weights.append(("ema", ema_best["epoch"], ema_best["model"]))
    return evaluate_weights(tr.config, tr.model, weights, tr.data, tr.device)
