"""Evaluation: the one loop that counts correct predictions (and sums cross-entropies), per-epoch and final.

`split_sums` is the only evaluation loop (`correct_counts` is its count half): the per-epoch
validation/test accuracies and losses (`trials.train.evaluate_epoch`) and the final evaluation of a
trial's best, last (and averaged) weights all call it. The final evaluation measures clean, FGSM,
the study's evaluation attack (`pgd_acc`: PGD, or FGSM from a random start for
`attack.eval.kind: fgsm_rs`) and AutoAttack on the same seeded test examples, entirely in fp32
(examples crafted and scored in the same precision), so the orderings AutoAttack ≤ PGD ≤ FGSM ≤
clean can be checked; violations are logged as signs of gradient masking or a broken attack.
AutoAttack is the official implementation (`pyautoattack`), never a re-implementation.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from trials import data as data_mod
from trials.attacks import attack_batch, frozen_weights
from trials.config import Attack, TrialConfig, resolved_eval_attack
from trials.models import prunable_weights
from trials.schema import pack_correct

log = logging.getLogger("decaylab.evaluation")
FINAL_SEED_OFFSET = 11  # the final evaluation's attack stream: split_seed + 11, the same for every trial


class SplitSums(NamedTuple):
    """Per attack: correct predictions (int64) and the sum of the per-example cross-entropies (float64),
    device tensors of shape (attacks,)."""

    correct: torch.Tensor
    ce: torch.Tensor
    per_example: torch.Tensor | None = None  # (attacks, examples) booleans, when asked for


def split_sums(model: nn.Module, split: data_mod.Split, attacks: Sequence[Attack | None], *, batch_size: int,
               autocast: contextlib.AbstractContextManager | None = None, channels_last: bool = False,
               generator: torch.Generator | None = None, per_example: bool = False) -> SplitSums:
    """Correct predictions and summed cross-entropy on `split` under each attack (None = clean inputs), and
    with `per_example` which examples each got right (the final evaluation keeps them, so the test set's
    own sampling can be put into the report's intervals).

    The model must be in eval mode (BatchNorm's running statistics). Nothing is read on the host: the
    sums stay on the device (the CE of each batch in fp32 from fp32 logits, accumulated in fp64).
    """
    if model.training:
        raise RuntimeError("evaluation needs the model in eval mode (BatchNorm running statistics)")
    ctx = autocast or contextlib.nullcontext()
    counts = torch.zeros(len(attacks), dtype=torch.long, device=split.y.device)
    ce = torch.zeros(len(attacks), dtype=torch.float64, device=split.y.device)
    right = torch.zeros((len(attacks), len(split)), dtype=torch.bool, device=split.y.device) if per_example else None
    for start in range(0, len(split), batch_size):
        x = data_mod.to_float(split.x[start:start + batch_size], channels_last)
        y = split.y[start:start + batch_size]
        for i, attack in enumerate(attacks):
            if attack is not None and attack.kind != "none":
                x_in = attack_batch(attack.kind, model, x, y, eps=attack.eps, step_size=attack.step_size,
                                    steps=attack.steps, random_start=attack.random_start, generator=generator,
                                    autocast=ctx)
            else:
                x_in = x
            with torch.inference_mode(), ctx:
                logits = model(x_in).float()
                hits = logits.argmax(1) == y
                counts[i] += hits.sum()
                ce[i] += F.cross_entropy(logits, y, reduction="sum").double()
                if right is not None:
                    right[i, start:start + len(y)] = hits
    return SplitSums(counts, ce, right)


def correct_counts(model: nn.Module, split: data_mod.Split, attacks: Sequence[Attack | None], *, batch_size: int,
                   autocast: contextlib.AbstractContextManager | None = None, channels_last: bool = False,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Correct predictions on `split` under each attack (None = clean inputs), as a device tensor
    (`split_sums`' counts; the same loop)."""
    return split_sums(model, split, attacks, batch_size=batch_size, autocast=autocast, channels_last=channels_last,
                      generator=generator).correct


def final_examples(cfg: TrialConfig, test_size: int) -> int:
    """How many test examples the final evaluation uses (the same for every trial of a study)."""
    ev = cfg.eval
    n = ev.final_examples or (ev.autoattack.examples if ev.autoattack.enabled else test_size)
    return min(n, test_size)


def sparsities(cfg: TrialConfig) -> tuple[float, ...]:
    if not cfg.eval.pruning.enabled:
        return (0.0,)
    return tuple(sorted({0.0, *cfg.eval.pruning.sparsity}))


def prune(model: nn.Module, sparsity: float, scope: str = "layer", order: list[torch.Tensor] | None = None) -> int:
    """Magnitude pruning without fine-tuning (`eval.pruning.scope`): `layer` zeroes the round(s·nₗ) smallest
    weights of every conv/linear weight tensor l (the same sparsity in every layer); `global` the round(s·n)
    smallest of all of them together. Per layer is the usual control for networks with BatchNorm, where the
    scale of a layer's weights is arbitrary (a scale-invariant layer's magnitudes say nothing about another
    layer's), so a global ranking would mostly prune whole layers of small norm. `order` is
    `pruning_order(model, scope)` of these very weights, given when one set of weights is pruned at several
    sparsities (the sort is most of the work). Returns how many weights were zeroed."""
    if scope not in ("layer", "global"):
        raise ValueError(f"unknown pruning scope {scope!r}")
    weights = prunable_weights(model)
    order = pruning_order(model, scope) if order is None else order
    if scope == "global":
        return _zero_smallest_global(weights, order[0], sparsity)
    return sum(_zero_smallest(w, o, sparsity) for w, o in zip(weights, order, strict=True))


@torch.no_grad()
def pruning_order(model: nn.Module, scope: str) -> list[torch.Tensor]:
    """The magnitude order of the prunable weights, smallest first (ties by position: a stable sort): one
    index tensor per weight tensor (`layer`), or one over all of them together (`global`)."""
    magnitudes = [w.detach().abs().flatten().float() for w in prunable_weights(model)]
    if scope == "global":
        return [torch.argsort(torch.cat(magnitudes), stable=True)]
    return [torch.argsort(m, stable=True) for m in magnitudes]


@torch.no_grad()
def _zero_smallest(w: torch.Tensor, order: torch.Tensor, sparsity: float) -> int:
    k = int(round(sparsity * w.numel()))
    if k:
        mask = torch.ones(w.numel(), dtype=torch.bool, device=w.device)
        mask[order[:k]] = False
        w.mul_(mask.view_as(w).to(w.dtype))
    return k


@torch.no_grad()
def _zero_smallest_global(weights: list[torch.Tensor], order: torch.Tensor, sparsity: float) -> int:
    k = int(round(sparsity * order.numel()))
    if k == 0:
        return 0
    mask = torch.ones(order.numel(), dtype=torch.bool, device=order.device)
    mask[order[:k]] = False
    offset = 0
    for w in weights:
        n = w.numel()
        w.mul_(mask[offset:offset + n].view_as(w).to(w.dtype))
        offset += n
    return k


def autoattack_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, cfg: TrialConfig,
                       device: torch.device) -> torch.Tensor:
    """Which examples AutoAttack does not break (booleans)."""
    from pyautoattack import AutoAttack

    aa = AutoAttack(model, eps=eps, norm="Linf", version=cfg.eval.autoattack.version,
                    seed=cfg.data.split_seed, device=device)
    aa.verbose = False
    with frozen_weights(model):
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=cfg.eval.autoattack.batch_size)
    # a perturbation outside the ε-ball or the image box would make the number meaningless
    if (x_adv - x).abs().max() > eps + 1e-5 or x_adv.min() < 0 or x_adv.max() > 1:
        raise RuntimeError("AutoAttack returned inputs outside the ε-ball or [0, 1]")
    with torch.inference_mode():
        return model(x_adv).argmax(1) == y


def evaluate_weights(cfg: TrialConfig, model: nn.Module, weights: Sequence[tuple[str, int, dict]],
                     data: data_mod.TrialData, device: torch.device) -> list[dict]:
    """Rows (schema EVAL_COLUMNS) for each of `weights` (which checkpoint, its epoch, its state dict) at
    every configured sparsity, in fp32. They are loaded, in turn, into one copy of `model` (which is
    left as it is)."""
    attack = resolved_eval_attack(cfg)
    robust = attack.kind != "none" and attack.eps > 0
    n = final_examples(cfg, len(data.test))
    examples = data.test.take(n)
    fgsm = Attack("pgd", attack.eps, 1, attack.eps, random_start=False)  # one step of size ε from x
    attacks = [None, fgsm, attack] if robust else [None]
    net = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format)
    rows = []
    order: list[torch.Tensor] | None = None
    for (which, epoch, state), s in itertools.product(weights, sparsities(cfg)):
        net.load_state_dict(state)
        net.eval()
        if s == 0.0:  # first for each set of weights (`sparsities`): their magnitude order, sorted once
            order = pruning_order(net, cfg.eval.pruning.scope) if cfg.eval.pruning.enabled else None
        if s > 0:
            prune(net, s, cfg.eval.pruning.scope, order)
        split = examples.take(cfg.eval.pruning.examples) if s > 0 else examples
        gen = torch.Generator(device).manual_seed(cfg.data.split_seed + FINAL_SEED_OFFSET)
        sums = split_sums(net, split, attacks, batch_size=cfg.eval.batch_size, generator=gen, per_example=s == 0.0)
        counts = sums.correct.tolist()
        k = len(split)
        accs = [c / k for c in counts] + [math.nan] * (3 - len(counts))
        aa, correct = math.nan, dict.fromkeys(("correct_clean", "correct_pgd", "correct_autoattack"))
        if s == 0.0:  # which examples each got right, for the report's test-set intervals (a few bytes each)
            right = sums.per_example.cpu().numpy()
            correct |= {"correct_clean": pack_correct(right[0]),
                        "correct_pgd": pack_correct(right[-1]) if robust else None}
        if robust and cfg.eval.autoattack.enabled and s == 0.0:
            aa_right = autoattack_correct(net, data_mod.to_float(split.x), split.y, attack.eps, cfg, device)
            aa = int(aa_right.sum()) / k
            correct["correct_autoattack"] = pack_correct(aa_right.cpu().numpy())
        row = cfg.key_columns() | {"checkpoint": which, "epoch": epoch, "sparsity": s, "examples": k,
                                   "clean_acc": accs[0], "fgsm_acc": accs[1], "pgd_acc": accs[2],
                                   "autoattack_acc": aa} | correct
        for warning in sanity_problems(row):
            log.warning("%s (%s checkpoint, sparsity %g): %s", cfg.trial_id, which, s, warning)
        rows.append(row)
    return rows


def sanity_problems(row: dict) -> list[str]:
    """Orderings that must hold on the same examples; a violation hints at gradient masking."""
    out = []
    pairs = [("autoattack_acc", "pgd_acc"), ("pgd_acc", "fgsm_acc"), ("fgsm_acc", "clean_acc")]
    for stronger, weaker in pairs:
        a, b = row[stronger], row[weaker]
        if math.isfinite(a) and math.isfinite(b) and a > b:
            out.append(f"{stronger} {a:.4f} > {weaker} {b:.4f}: possible gradient masking or a broken attack")
    return out
