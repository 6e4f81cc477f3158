"""Training images per second: decaylab's epoch loop against Rice et al.'s, and where the difference comes from.

The reference is `bench.reference_trainer`: Rice, Wong & Kolter's loop with their own data path
(pre-padded arrays, per-epoch crop and flip choices, crops sliced per image by a DataLoader), weight
gradients inside the attack, a restart-picking forward, a logging forward and `.item()` reads every step.
decaylab is `trials.train.train_epoch` on a trainer `build_trainer` makes, in the memory layout its
config resolves to (`train.channels_last` unset: NCHW on a CPU, channels_last on CUDA). Between the two,
a ladder replaces one piece of the reference at a time by decaylab's:

    reference                 their loop as written
    + device data             uint8 images as one tensor, crop and flip as batched tensor ops
    + input-only attack       decaylab's PGD: gradients w.r.t. the input only, one clamp per step,
                              no restart-picking forward
    + no logging forward      metrics summed on the device and read once per epoch
    decaylab                  `train_epoch` itself: the arm's hooks, the lr factor, the accumulators

Every rung trains the same network from the same initialisation with the same batch size, ε, step size
and PGD steps on the same images; the rounds interleave the rungs (A B C … C B A), CPU time of this
process, one intra-op thread. Two settings: **digits**, the default study's first trial (studies/digits.yaml
as it is, a full epoch a round), and **preact18**, PreAct ResNet-18 on random 32×32 images, batch 16,
PGD-10 at ε 8/255 (Rice et al.'s setting, one step a round). Figure: the lower of the two
reference ÷ decaylab ratios, each the median of per-round ratios.

Why: an honest reference loop is the yardstick for decaylab's per-trial cost; each rung's saving says
which of decaylab's choices the speed comes from.
"""

from __future__ import annotations

import copy
import statistics

import torch

from bench import reference_trainer as ref
from bench.common import (
    REPO,
    closing,
    interleaved,
    machine_line,
    median,
    one_thread,
    paired_ratio,
    sized,
    synthetic_data,
    trial,
)
from orchestrator.study.load import load_study
from orchestrator.study.plan import expand_grid
from trials.config import TrialConfig, resolved_train_attack
from trials.data import TrialData
from trials.train import build_trainer, lr_factor, train_epoch


def default_trial() -> TrialConfig:
    """The default study's first trial (a fixed-λ arm), as its file sets it."""
    study = load_study(REPO / "studies" / "digits.yaml", sized([], ["data.subset=100"]))
    return next(cfg for cfg in expand_grid(study) if cfg.kind == "fixed")


# name: (config, synthetic training images or None for the configured dataset, timed rounds). An even
# number of rounds puts every rung first and last equally often (the order reverses each round).
SETTINGS = {
    "digits": (default_trial, None, sized(6, 1)),
    "preact18": (lambda: trial(arch="preact_resnet18", dataset="cifar10", batch_size=sized(16, 2), steps=10,
                               eps=8 / 255, step_size=2 / 255, lr=0.1, epochs=10), sized(16, 2), sized(4, 1)),
}
LADDER = ("reference", "+ device data", "+ input-only attack", "+ no logging forward", "decaylab")


def variants(cfg: TrialConfig, synthetic: int | None) -> tuple[dict, int, bool]:
    """The ladder's epoch functions, the number of training images one call trains on, and whether decaylab
    trains in channels_last."""
    data: TrialData | None = synthetic_data(synthetic) if synthetic else None
    tr = build_trainer(cfg, "cpu", data=data)
    initial = copy.deepcopy(tr.model).to(memory_format=torch.contiguous_format)  # the same weights, NCHW
    attack = resolved_train_attack(cfg)
    info, train = tr.data.info, tr.data.train
    batch = {"batch_size": cfg.train.batch_size, "pad": info.pad, "flip": info.flip}
    total = tr.steps_per_epoch * cfg.train.epochs

    def rung(batches, **switches):
        model = copy.deepcopy(initial)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.train.momentum,
                                    weight_decay=cfg.params["lam"])
        gen = torch.Generator().manual_seed(1)
        return lambda: ref.train_epoch(model, batches, optimizer, eps=attack.eps, alpha=attack.step_size,
                                       steps=attack.steps, lr_at=lambda i: cfg.lr * lr_factor(cfg, i, total),
                                       generator=gen, **switches)

    def decaylab() -> None:
        train_epoch(tr)
        tr.epoch = (tr.epoch + 1) % cfg.train.epochs

    rice, device = ref.RiceBatches(train.x, train.y, **batch), ref.DeviceBatches(train.x, train.y, **batch)
    fns = {
        "reference": rung(rice),
        "+ device data": rung(device),
        "+ input-only attack": rung(device, lean_attack=True),
        "+ no logging forward": rung(device, lean_attack=True, log_forward=False),
        "decaylab": decaylab,
    }
    return fns, len(train), tr.channels_last


def measure(name: str, cfg: TrialConfig, synthetic: int | None, rounds: int) -> float:
    fns, n, channels_last = variants(cfg, synthetic)
    times = interleaved(fns, repeats=rounds)
    attack = resolved_train_attack(cfg)
    layout = "channels_last" if channels_last else "NCHW"
    print(f"{name}: {cfg.model.arch}, {n} images per round, batch {cfg.train.batch_size}, PGD-{attack.steps}, "
          f"decaylab in {layout}; {rounds} rounds (medians; CPU time of this process, wall in brackets)")
    base = previous = median(times["reference"])
    for rung in LADDER:
        t = median(times[rung])
        saving = "" if rung == "reference" else f"  saves {(previous - t) / base:+6.1%} of the reference's time"
        print(f"  {rung:22s} {n / t:8.1f} img/s  {t:7.3f} s ({median(times[rung], 'wall'):7.3f} s){saving}")
        previous = t
    spread = statistics.pstdev(x.cpu / y.cpu for x, y in zip(times["reference"], times["decaylab"], strict=True))
    for clock in ("cpu", "wall"):
        print(f"  reference ÷ decaylab ({clock}): {paired_ratio(times['reference'], times['decaylab'], clock):.3f}")
    print(f"  (spread of the per-round CPU ratios: ±{spread:.3f})")
    return paired_ratio(times["reference"], times["decaylab"])


def main() -> None:
    one_thread()
    print(machine_line())
    ratios = {name: measure(name, make(), synthetic, rounds) for name, (make, synthetic, rounds) in SETTINGS.items()}
    print("reference ÷ decaylab (CPU time, median of per-round ratios): "
          + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    closing("trainer_vs_reference", min(ratios.values()))


if __name__ == "__main__":
    main()
