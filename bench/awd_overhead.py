"""What adaptive weight decay costs on top of fixed weight decay, per adversarial training step.

One `trials.train.train_step` (PGD-2 attack, forward and backward on x_adv, the arm's hooks, SGD step) with
AWD (λ_awd 0.02) and with fixed decay (λ 5e-4), on one model, optimiser and batch as `build_trainer` makes
them, the two arms alternating step by step, on PreAct ResNet-18 and WRN-28-10. Small batches and few PGD
steps are the hard case: AWD's extra work (one more global norm, λ̄·w) is a fixed cost per step. Two
identical full steps differ from round to round by more than the target, so the figure is built from what
differs: the arm's hooks (`apply`, `after_step`, `step_stats`), timed by themselves, interleaved.
Figure: (fixed step + AWD's hooks − fixed decay's hooks) ÷ fixed step, worst model; CPU time of this
process, one intra-op thread, medians. The full-step ratios are printed beside it; an indirect cost (AWD's
work evicting caches the rest of the step uses) is what the figure cannot see.

Why: AWD is the method under study; what it costs per step must not be the reason to prefer fixed decay.
"""

from __future__ import annotations

import torch

from bench.common import (
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
from trials import data as data_mod
from trials.config import resolved_train_attack
from trials.models import decayed_parameters
from trials.train import build_trainer, train_step
from trials.weight_decay import AdaptiveWeightDecay, FixedWeightDecay

# (arch, batch, timed steps per arm), after one untimed step per arm; fewer steps leave the full-step
# medians printed beside the figure too noisy to read
CASES = sized((("preact_resnet18", 16, 10), ("wide_resnet", 8, 5)), (("preact_resnet18", 2, 1), ("wide_resnet", 1, 1)))
PGD_STEPS = 2
APPLY_ROUNDS = sized(15, 2)


def measure(arch: str, batch: int, rounds: int) -> float:
    cfg = trial(arch=arch, dataset="cifar10", batch_size=batch, steps=PGD_STEPS, eps=8 / 255)
    attack = resolved_train_attack(cfg)
    data = synthetic_data(batch)
    tr = build_trainer(cfg, "cpu", data=data)  # the model and optimiser (SGD, foreach) a trial trains with
    model, optimizer = tr.model.train(), tr.optimizer
    decayed = decayed_parameters(model, cfg.train.decay)
    arms = {"fixed": FixedWeightDecay(decayed, 5e-4), "awd": AdaptiveWeightDecay(decayed, 0.02)}
    x, y = data_mod.to_float(data.train.x, tr.channels_last), data.train.y
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
