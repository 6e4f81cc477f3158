"""What adaptive weight decay costs on top of fixed weight decay, per full adversarial training step.

One `trials.train.train_step` (PGD attack, forward/backward on x_adv, weight decay, SGD step)
with AWD (λ_awd 0.02) against the same step with fixed WD (λ 5e-4), on one model, one optimiser
and one batch, alternating the two decay objects step by step. Small batches and PGD-2 keep it
short on a CPU, and make it the hard case: AWD's extra work (one more global norm, λ̄·w) is a
fixed cost per step, so the ratio only shrinks as batch or K grow. The `apply()` calls alone are
timed too, which gives that fixed cost in milliseconds.

    .venv/bin/python -m bench.awd_overhead        (target: ratio ≤ 1.02)
"""

from __future__ import annotations

import torch

from bench.common import (
    CIFAR_INFO,
    closing,
    interleaved,
    machine_line,
    median,
    one_thread,
    paired_ratio,
    synthetic_data,
    trial,
)
from trials import data as data_mod
from trials.config import resolved_train_attack
from trials.models import build_model, decayed_parameters
from trials.train import train_step
from trials.weight_decay import AdaptiveWeightDecay, FixedWeightDecay

# (arch, batch, timed steps per arm), after one untimed step per arm: ~20 s and ~40 s of CPU time
CASES = (("preact_resnet18", 16, 8), ("wide_resnet", 8, 3))
PGD_STEPS = 2
APPLY_ROUNDS = 15


def measure(arch: str, batch: int, rounds: int) -> float:
    cfg = trial(arch=arch, dataset="cifar10", batch_size=batch, steps=PGD_STEPS, eps=8 / 255)
    attack = resolved_train_attack(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, CIFAR_INFO).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    decayed = decayed_parameters(model, cfg.train.decay)
    arms = {"fixed": FixedWeightDecay(decayed, 5e-4), "awd": AdaptiveWeightDecay(decayed, 0.02)}
    data = synthetic_data(batch)
    x, y = data_mod.to_float(data.train.x), data.train.y
    gen = torch.Generator().manual_seed(1)

    def step(arm: str):
        return lambda: train_step(model, optimizer, arms[arm], x, y, attack, 0.01, generator=gen)

    steps = interleaved({"fixed": step("fixed"), "awd": step("awd")}, repeats=rounds)
    applies = interleaved({name: wd.apply for name, wd in arms.items()}, repeats=APPLY_ROUNDS)
    ratio = paired_ratio(steps["awd"], steps["fixed"])
    extra_ms = 1e3 * (median(applies["awd"]) - median(applies["fixed"]))
    params = sum(p.numel() for p in decayed) / 1e6
    print(f"{arch} ({params:.1f} M decayed parameters), batch {batch}, PGD-{PGD_STEPS}, "
          f"{len(steps['awd'])} steps per arm:")
    for clock in ("cpu", "wall"):
        fixed, awd = median(steps["fixed"], clock), median(steps["awd"], clock)
        print(f"  {clock:4s} step: fixed {fixed:7.3f} s  awd {awd:7.3f} s"
              f"  ratio awd/fixed {paired_ratio(steps['awd'], steps['fixed'], clock):.4f}")
    print(f"  apply(): fixed {1e3 * median(applies['fixed']):.1f} ms  awd {1e3 * median(applies['awd']):.1f} ms"
          f"  → AWD adds {extra_ms:.1f} ms a step = ratio {1 + extra_ms / 1e3 / median(steps['fixed']):.4f}"
          " from the components", flush=True)
    return ratio


def main() -> None:
    one_thread()
    print(machine_line())
    ratios = [measure(*case) for case in CASES]
    print(f"worst ratio over {len(CASES)} models (CPU time, median of per-round ratios): {max(ratios):.4f}")
    closing("awd_overhead", max(ratios))


if __name__ == "__main__":
    main()
