"""Training images per second: decaylab's epoch loop against Rice et al.'s, and where the difference comes from.

The reference is `bench.reference_trainer`: Rice, Wong & Kolter's loop with their own data path
(pre-padded arrays, per-epoch crop and flip choices, crops sliced per image by a DataLoader), weight
gradients inside the attack, a restart-picking forward, a logging forward and `.item()` reads every
step. decaylab is `trials.train.train_epoch` on a real trial. Between the two, a ladder replaces one
piece of the reference at a time by decaylab's:

    reference                     their loop as written
    + device data                 uint8 images as one tensor, crop and flip as batched tensor ops
    + input-only attack           decaylab's PGD: gradients w.r.t. the input only, one clamp per step,
                                  no restart-picking forward
    + no logging forward          metrics summed on the device and read once per epoch
    decaylab (NCHW)               `train_epoch` itself: the arm's hooks instead of SGD's weight_decay,
                                  the lr factor, the accumulators
    decaylab (channels_last)      the same in channels_last
    decaylab (per-conv layout)    the same with each convolution in the layout decaylab picks on a CPU when
                                  `train.channels_last` is unset (channels_last, but NCHW for more than
                                  128 channels on maps under 16×16)

All variants train the same network from the same initialisation, with the same batch size, ε, step
size and number of PGD steps, on the same images; the rounds interleave them (A B C … C B A). Each
rung's saving is printed as a share of the reference's time, against the rung above it (the
channels_last and per-conv rungs: against decaylab (NCHW)).

Two settings, and the closing figure is the lower of the two ratios reference ÷ decaylab, where decaylab
is `train_epoch` in the memory layout it uses for that setting on a CPU (`train.channels_last`: set
to true in the default study, whose small_cnn it speeds up; unset, per convolution):
- digits: the CPU workload decaylab runs by default (small_cnn on 8×8 digits, batch 32, PGD-5,
  ε 0.25, channels_last as the default study sets it), a full epoch of 1,295 images per round;
- preact18: PreAct ResNet-18 on random 32×32 images (batch 16, PGD-10 at ε 8/255, Rice et al.'s
  setting; `channels_last` unset, so per convolution on a CPU), one step per round: convolutions dominate, and
  so do forward-equivalents (about 35 per image in their loop against 23).

    .venv/bin/python -m bench.trainer_vs_reference     (target: reference ÷ decaylab ≥ 1.4)
"""

from __future__ import annotations

import copy
import statistics

import torch

from bench import reference_trainer as ref
from bench.common import closing, interleaved, machine_line, median, one_thread, paired_ratio, synthetic_data, trial
from trials.config import TrialConfig, resolved_train_attack
from trials.data import TrialData
from trials.train import build_trainer, lr_factor, train_epoch

SETTINGS = {
    # name: (config, synthetic training images or None for the configured dataset, timed rounds). An even
    # number of rounds puts every rung first and last equally often (the order reverses each round).
    "digits": (trial(arch="small_cnn", dataset="digits", batch_size=32, steps=5, eps=0.25, step_size=0.1,
                     lr=0.1, epochs=10, channels_last=True), None, 6),
    "preact18": (trial(arch="preact_resnet18", dataset="cifar10", batch_size=16, steps=10, eps=8 / 255,
                       step_size=2 / 255, lr=0.1, epochs=10, channels_last=None), 16, 4),
}
LADDER = ("reference", "+ device data", "+ input-only attack", "+ no logging forward", "decaylab (NCHW)",
          "decaylab (channels_last)", "decaylab (per-conv layout)")
LAYOUTS = {"decaylab (NCHW)": False, "decaylab (channels_last)": True, "decaylab (per-conv layout)": None}


def default_rung(cfg: TrialConfig) -> str:
    """The rung that is decaylab as it runs `cfg` on a CPU."""
    return next(name for name, value in LAYOUTS.items() if value == cfg.train.channels_last)


def variants(cfg: TrialConfig, synthetic: int | None) -> tuple[dict, int]:
    """The ladder's epoch functions, and the number of training images one call trains on."""
    data: TrialData | None = synthetic_data(synthetic) if synthetic else None
    layout = {name: cfg.model_copy(update={"train": cfg.train.model_copy(update={"channels_last": value})})
              for name, value in LAYOUTS.items()}
    trainers = {name: build_trainer(c, "cpu", data=data) for name, c in layout.items()}
    tr = trainers["decaylab (NCHW)"]
    initial = copy.deepcopy(tr.model)  # the same initial weights, plain NCHW
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

    def decaylab(trainer):
        def epoch() -> None:
            train_epoch(trainer)
            trainer.epoch = (trainer.epoch + 1) % cfg.train.epochs

        return epoch

    rice, device = ref.RiceBatches(train.x, train.y, **batch), ref.DeviceBatches(train.x, train.y, **batch)
    fns = {
        "reference": rung(rice),
        "+ device data": rung(device),
        "+ input-only attack": rung(device, lean_attack=True),
        "+ no logging forward": rung(device, lean_attack=True, log_forward=False),
        **{name: decaylab(trainer) for name, trainer in trainers.items()},
    }
    return fns, len(train)


def measure(name: str, cfg: TrialConfig, synthetic: int | None, rounds: int) -> float:
    fns, n = variants(cfg, synthetic)
    times = interleaved(fns, repeats=rounds)
    attack = resolved_train_attack(cfg)
    print(f"{name}: {cfg.model.arch}, {n} images per round, batch {cfg.train.batch_size}, PGD-{attack.steps}, "
          f"{rounds} rounds (medians; CPU time of this process, wall in brackets)")
    base = median(times["reference"])
    previous = base
    for rung in LADDER:
        t = median(times[rung])
        saving = "" if rung == "reference" else f"  saves {(previous - t) / base:+6.1%} of the reference's time"
        print(f"  {rung:26s} {n / t:8.1f} img/s  {t:7.3f} s ({median(times[rung], 'wall'):7.3f} s){saving}")
        if rung not in LAYOUTS or rung == "decaylab (NCHW)":
            previous = t  # the other layouts are compared with NCHW
    ours = default_rung(cfg)
    spread = statistics.pstdev(x.cpu / y.cpu for x, y in zip(times["reference"], times[ours], strict=True))
    print(f"  decaylab below = {ours}: its memory layout for this setting on a CPU")
    for clock in ("cpu", "wall"):
        print(f"  reference ÷ decaylab ({clock}): {paired_ratio(times['reference'], times[ours], clock):.3f}")
    print(f"  (spread of the per-round CPU ratios: ±{spread:.3f})")
    return paired_ratio(times["reference"], times[ours])


def main() -> None:
    one_thread()
    print(machine_line())
    ratios = {name: measure(name, *setting) for name, setting in SETTINGS.items()}
    print("reference ÷ decaylab (CPU time, median of per-round ratios): "
          + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    closing("trainer_vs_reference", min(ratios.values()))


if __name__ == "__main__":
    main()
