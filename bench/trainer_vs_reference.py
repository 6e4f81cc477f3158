"""Training images per second: decaylab's epoch loop against a Rice et al.-style loop.

Both train the same network from the same initialisation on the same training images, with the
same batch size, ε, step size, number of PGD steps and augmentation; epochs alternate between the
two loops. decaylab runs `trials.train.train_epoch` on a real trial (data as a uint8 tensor,
batched augmentation, attack gradients w.r.t. δ only, metrics read once per epoch); the reference
is `bench.reference_trainer` (weight gradients inside the attack, per-example DataLoader
augmentation, a logging forward and `.item()` reads every step).

Two settings, and the closing figure is the lower of the two:
- digits: the CPU workload decaylab actually runs (`studies/digits.yaml`: small_cnn on 8×8 digits,
  batch 32, PGD-5), a full epoch of ~1,300 images per round — cheap enough for several rounds;
- preact18: PreAct ResNet-18 on random 32×32 images (batch 16, PGD-10, as Rice et al.), one step
  per round, where convolutions dominate and the difference is mostly forward-equivalents (35 vs 23).

    .venv/bin/python -m bench.trainer_vs_reference     (target: decaylab / reference ≥ 1.4)
"""

from __future__ import annotations

import copy

import torch

from bench import reference_trainer as ref
from bench.common import closing, interleaved, machine_line, median, one_thread, paired_ratio, synthetic_data, trial
from trials.config import TrialConfig, resolved_train_attack
from trials.data import TrialData
from trials.train import build_trainer, lr_factor, train_epoch

SETTINGS = {
    # name: (config, synthetic training images or None for the configured dataset, timed rounds)
    "digits": (trial(arch="small_cnn", dataset="digits", batch_size=32, steps=5, eps=0.25, step_size=0.1,
                     lr=0.1, epochs=10), None, 5),
    "preact18": (trial(arch="preact_resnet18", dataset="cifar10", batch_size=16, steps=10, eps=8 / 255,
                       step_size=2 / 255, lr=0.1, epochs=10), 16, 3),
}


def measure(name: str, cfg: TrialConfig, synthetic: int | None, rounds: int) -> float:
    data: TrialData | None = synthetic_data(synthetic) if synthetic else None
    tr = build_trainer(cfg, "cpu", data=data)
    model = copy.deepcopy(tr.model)  # the same initial weights
    attack = resolved_train_attack(cfg)
    info, train = tr.data.info, tr.data.train
    batches = ref.loader(train.x, train.y, batch_size=cfg.train.batch_size, pad=info.pad, flip=info.flip)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.train.momentum, weight_decay=cfg.lam)
    total = tr.steps_per_epoch * cfg.train.epochs

    def decaylab() -> None:
        train_epoch(tr)
        tr.epoch = (tr.epoch + 1) % cfg.train.epochs

    def reference() -> None:
        ref.train_epoch(model, batches, optimizer, eps=attack.eps, alpha=attack.step_size, steps=attack.steps,
                        lr_at=lambda i: cfg.lr * lr_factor(cfg, i, total))

    times = interleaved({"decaylab": decaylab, "reference": reference}, repeats=rounds)
    n = len(train)
    print(f"{name}: {cfg.model.arch}, {n} images per round, batch {cfg.train.batch_size}, PGD-{attack.steps}, "
          f"{rounds} rounds")
    for clock in ("cpu", "wall"):
        ips = {k: n / median(v, clock) for k, v in times.items()}
        speedup = paired_ratio(times["reference"], times["decaylab"], clock)
        print(f"  {clock:4s}: decaylab {ips['decaylab']:8.1f} img/s   reference {ips['reference']:8.1f} img/s"
              f"   decaylab/reference {speedup:.3f}", flush=True)
    return paired_ratio(times["reference"], times["decaylab"])


def main() -> None:
    one_thread()
    print(machine_line())
    ratios = {name: measure(name, *setting) for name, setting in SETTINGS.items()}
    print("decaylab / reference (CPU time, median of per-round ratios): "
          + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    closing("trainer_vs_reference", min(ratios.values()))


if __name__ == "__main__":
    main()
