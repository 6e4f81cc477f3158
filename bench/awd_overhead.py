"""What adaptive weight decay costs on top of fixed weight decay, per full adversarial training step.

One `trials.train.train_step` (PGD attack, forward/backward on x_adv, weight decay, SGD step)
with AWD (λ_awd 0.02) against the same step with fixed WD (λ 5e-4), on one model, one optimiser
and one batch, alternating the two decay objects step by step. Small batches and PGD-2 keep it
short on a CPU, and make it the hard case: AWD's extra work (one more global norm, λ̄·w) is a
fixed cost per step, so the ratio only shrinks as batch or K grow.

Everything in a step but the arm's hooks is the same code for both arms, so the arm's own work per
step (`apply()`, `after_step()`, `step_stats()`) is also timed by itself, 15 rounds each. The closing
figure is (fixed step + AWD's hooks − fixed decay's hooks) ÷ fixed step: on this machine two
identical steps differ by ±5% from one round to the next, and the median of full-step ratios over
a handful of steps moved between 0.94 and 1.07 in runs of the same code, which cannot resolve a 2%
target, while the hooks' times repeat to a tenth of a millisecond. The full-step ratios are printed
beside it; what the component figure cannot see is an indirect cost (e.g. AWD's work evicting the
caches the rest of the step uses).

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

# (arch, batch, timed steps per arm), after one untimed step per arm: ~25 s and ~40 s of CPU time; with
# fewer WRN steps the median moved by ±4% between runs, against AWD's ~0.5% measured by its components
CASES = (("preact_resnet18", 16, 10), ("wide_resnet", 8, 5))
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

    def hooks(arm: str):  # the arm's own work in a step; the rest of `train_step` is the same for both
        wd = arms[arm]
        return lambda: (wd.apply(), wd.after_step(1.0), wd.step_stats())

    steps = interleaved({"fixed": step("fixed"), "awd": step("awd")}, repeats=rounds)
    applies = interleaved({"fixed": hooks("fixed"), "awd": hooks("awd")}, repeats=APPLY_ROUNDS)
    extra_ms = 1e3 * (median(applies["awd"]) - median(applies["fixed"]))
    ratio = 1 + extra_ms / 1e3 / median(steps["fixed"])
    params = sum(p.numel() for p in decayed) / 1e6
    print(f"{arch} ({params:.1f} M decayed parameters), batch {batch}, PGD-{PGD_STEPS}, "
          f"{len(steps['awd'])} steps per arm:")
    for clock in ("cpu", "wall"):
        fixed, awd = median(steps["fixed"], clock), median(steps["awd"], clock)
        print(f"  {clock:4s} step: fixed {fixed:7.3f} s  awd {awd:7.3f} s"
              f"  ratio awd/fixed {paired_ratio(steps['awd'], steps['fixed'], clock):.4f}")
    print(f"  the arm's hooks: fixed {1e3 * median(applies['fixed']):.1f} ms  awd {1e3 * median(applies['awd']):.1f} ms"
          f"  → AWD adds {extra_ms:.1f} ms a step: ratio {ratio:.4f}", flush=True)
    return ratio


def main() -> None:
    one_thread()
    print(machine_line())
    ratios = [measure(*case) for case in CASES]
    print(f"worst ratio over {len(CASES)} models (fixed step + AWD's extra hook time, ÷ fixed step): {max(ratios):.4f}")
    closing("awd_overhead", max(ratios))


if __name__ == "__main__":
    main()
