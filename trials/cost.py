"""What a trial costs, counted in forward-equivalents: one forward pass of one image (a backward pass
counts as two; an attack step is a forward and a backward with respect to the input only).

- training: epochs × training images × (2K+3) for PGD-K (K attack steps of 2, then the training
  forward and backward), 5 for FGSM from a random start, 3 for natural training;
- per-epoch evaluation (every `eval.every` epochs): val and test images × (2K'+2) for clean and
  PGD-K' accuracy (twice with `train.ema`: the live and the averaged weights), and the
  `train_clean_acc` images × 1;
- final evaluation of the best and the last weights (and the averaged ones with `train.ema`): per
  sparsity clean (1) + FGSM (3) + PGD-K' (2K'+1) on the final examples, and AutoAttack at sparsity 0
  counted as AA_FORWARD_EQUIVALENTS per image (an assumption: the standard version spends most of its
  budget on the points that stay robust).

Split sizes come from the dataset's published size (`orchestrator`'s feasibility checks use the
same); an `image_folder` whose files are not here is taken to be Tiny ImageNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trials import data as data_mod
from trials.config import TrialConfig, resolved_eval_attack, resolved_train_attack
from trials.evaluation import final_examples, sparsities

AA_FORWARD_EQUIVALENTS = 4_500  # standard AutoAttack per image, ~half the points robust (assumption)
TINY_IMAGENET = (100_000, 10_000, 200)  # image_folder without its files: training pool, test images, classes


@dataclass(frozen=True)
class Splits:
    train: int
    val: int
    test: int


@dataclass(frozen=True)
class ForwardEquivalents:
    """One trial's forward-equivalents, by where they are spent."""

    train: float  # the training steps
    evaluation: float  # per-epoch val/test/train-clean accuracies
    final: float  # final evaluation of the best and last weights (AutoAttack included)

    @property
    def total(self) -> float:
        return self.train + self.evaluation + self.final


def split_sizes(cfg: TrialConfig, pool: int, test: int | None) -> Splits:
    """Training, validation and test images of a trial, from the dataset's training pool and official test
    size (None: a stratified test split is held out of the pool, as for digits)."""
    if test is None:
        test = round(pool * cfg.data.test_fraction)
        pool -= test
    val = round(pool * cfg.data.val_fraction)
    return Splits(cfg.data.subset or pool - val, val, test)


def per_training_image(cfg: TrialConfig) -> int:
    """Forward-equivalents of one training image in one epoch (its attack, forward and backward)."""
    tr = resolved_train_attack(cfg)
    return {"pgd": 2 * tr.steps + 3, "fgsm_rs": 5, "none": 3}[tr.kind]


def per_evaluated_image(cfg: TrialConfig) -> int:
    """Forward-equivalents of one val or test image in a per-epoch evaluation (clean, then the attack)."""
    attack = resolved_eval_attack(cfg)
    return 2 * attack.steps + 2 if attack.kind != "none" else 1


def forward_equivalents(cfg: TrialConfig, splits: Splits) -> ForwardEquivalents:
    ev = cfg.eval
    k_eval = resolved_eval_attack(cfg).steps
    evaluations = -(-cfg.train.epochs // ev.every)
    val = min(ev.val_examples or splits.val, splits.val)
    test = min(ev.test_examples or splits.test, splits.test)
    train_clean = min(ev.train_examples or splits.val, splits.train)
    per_final_image = len(sparsities(cfg)) * (1 + 3 + 2 * k_eval + 1) \
        + (AA_FORWARD_EQUIVALENTS if ev.autoattack.enabled else 0)
    averaged = cfg.train.ema is not None
    return ForwardEquivalents(
        train=cfg.train.epochs * splits.train * per_training_image(cfg),
        evaluation=evaluations * ((1 + averaged) * (val + test) * per_evaluated_image(cfg) + train_clean),
        final=(2 + averaged) * final_examples(cfg, splits.test) * per_final_image)  # best, last (and ema) weights


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass of `x` as torch counts them (2 per multiply-add of convs and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


def synthetic_data(n: int, info: data_mod.DatasetInfo, seed: int = 0,
                   device: torch.device | str = "cpu") -> data_mod.TrialData:
    """Random uint8 images with random labels: for timing, the values do not matter."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, info.channels, info.size, info.size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, info.classes, (n,), generator=g)
    split = data_mod.Split(x.to(device), y.to(device))
    return data_mod.TrialData(info=info, train=split, val=split.take(64), test=split.take(64),
                              noisy=torch.zeros(n, dtype=torch.bool, device=device), clean_train_labels=split.y,
                              label_noise_actual=0.0)
