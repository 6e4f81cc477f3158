"""Forward-equivalents per training image of a PGD-K step, measured, against the 2K+3 floor.

A lean PGD-K training step costs K attack forwards and K input-only backwards (≈ 1 forward each, no
weight-gradient kernels), then one forward and one full backward (≈ 2 forwards): 2K+3 forward-equivalents.
Measured: the time of one `trials.train.train_step` ÷ the time of one forward of the same batch in train
mode (autograd recording, as the step's own forwards run), the two interleaved with the attack alone
(against its 2K); CPU time of this process, one intra-op thread, medians. PreAct ResNet-18, K = 10 (Rice et
al.'s setting), model and optimiser as `build_trainer` makes them.

Why: the attack is most of a trial's GPU time; a step that does more than the floor's work (weight
gradients inside the attack, extra forwards) costs every trial of every study.
"""

from __future__ import annotations

import torch

from bench.common import (
    CIFAR_INFO,
    closing,
    forward_flops,
    interleaved,
    machine_line,
    median,
    one_thread,
    sized,
    synthetic_data,
    trial,
)
from trials import data as data_mod
from trials.attacks import attack_batch
from trials.config import ModelConfig, resolved_train_attack
from trials.models import build_model, decayed_parameters
from trials.train import build_trainer, train_step
from trials.weight_decay import FixedWeightDecay

K = 10
BATCH = sized(16, 2)
ROUNDS = sized(4, 1)
FORWARDS_PER_ROUND = 4  # a forward is ~1/23 of a step: time several for a steadier median
ANCHOR_GFLOP = {"preact_resnet18": 1.11, "wide_resnet": 10.49}  # published forward GFLOP of one 32×32 image


def main() -> None:
    one_thread()
    print(machine_line())
    probe = torch.rand(1, 3, 32, 32)
    gflop = {arch: forward_flops(build_model(ModelConfig(arch=arch), CIFAR_INFO), probe) / 1e9
             for arch in ANCHOR_GFLOP}
    for arch, anchor in ANCHOR_GFLOP.items():
        print(f"forward FLOPs per 32×32 image, {arch}: {gflop[arch]:.3f} GFLOP (FlopCounterMode; published: {anchor})")

    cfg = trial(arch="preact_resnet18", dataset="cifar10", batch_size=BATCH, steps=K, eps=8 / 255, step_size=2 / 255)
    attack = resolved_train_attack(cfg)
    data = synthetic_data(BATCH)
    tr = build_trainer(cfg, "cpu", data=data)  # the model and optimiser (SGD, foreach) a trial trains with
    model, optimizer = tr.model.train(), tr.optimizer
    wd = FixedWeightDecay(decayed_parameters(model, cfg.train.decay), 5e-4)
    x, y = data_mod.to_float(data.train.x, tr.channels_last), data.train.y
    gen = torch.Generator().manual_seed(1)

    def forwards() -> None:
        for _ in range(FORWARDS_PER_ROUND):
            model(x)

    times = interleaved({
        "forward": forwards,
        "attack": lambda: attack_batch("pgd", model, x, y, eps=attack.eps, step_size=attack.step_size, steps=K,
                                       generator=gen),
        "step": lambda: train_step(model, optimizer, wd, x, y, attack, 0.01, generator=gen),
    }, repeats=ROUNDS)
    floor = 2 * K + 3
    print(f"preact_resnet18, batch {BATCH}, PGD-{K}, {ROUNDS} rounds, one intra-op thread:")
    for clock in ("cpu", "wall"):
        fwd = median(times["forward"], clock) / FORWARDS_PER_ROUND
        step, att = median(times["step"], clock), median(times["attack"], clock)
        print(f"  {clock:4s}: forward {fwd:.3f} s  attack {att:.3f} s = {att / fwd:.1f} fwd (floor {2 * K})  "
              f"step {step:.3f} s = {step / fwd:.1f} fwd (floor {floor}), of which outside the attack "
              f"{(step - att) / fwd:.1f} (floor 3)")
    fwd = median(times["forward"]) / FORWARDS_PER_ROUND
    measured = median(times["step"]) / fwd
    gflops = gflop["preact_resnet18"] * BATCH * floor / median(times["step"])
    print(f"forward-equivalents per training image: measured {measured:.1f}, floor 2K+3 = {floor}; "
          f"{gflops:.0f} GFLOP/s of floor work on one core")
    closing("attack_cost", measured / floor)


if __name__ == "__main__":
    main()
