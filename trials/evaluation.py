"""Final evaluations of a trial's best and last weights: FGSM/PGD/AutoAttack and pruning.

All accuracies of one row are measured on the same seeded test examples, so they can be
checked against each other (AutoAttack ≤ PGD ≤ FGSM ≤ clean); violations are logged as
signs of gradient masking or a broken attack. AutoAttack is the official implementation
(`pyautoattack`), never a re-implementation.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from trials import data as data_mod
from trials.attacks import fgsm, frozen_weights, pgd
from trials.config import AttackSpec, TrialConfig, resolved_eval_attack
from trials.models import prunable_weights

if TYPE_CHECKING:
    from trials.train import Trainer

log = logging.getLogger("decaylab.evaluation")


def final_examples(cfg: TrialConfig, test_size: int) -> int:
    """How many test examples the final evaluations use (the same for every trial of a study)."""
    n = cfg.eval.autoattack.examples if cfg.eval.autoattack.enabled else cfg.eval.pruning.examples or test_size
    return min(n, test_size)


def sparsities(cfg: TrialConfig) -> tuple[float, ...]:
    if not cfg.eval.pruning.enabled:
        return (0.0,)
    return tuple(sorted({0.0, *cfg.eval.pruning.sparsity}))


@torch.no_grad()
def prune_global(model: nn.Module, sparsity: float) -> int:
    """Zero the round(s·n) smallest-magnitude conv/linear weights (global ranking). Returns n zeroed."""
    weights = prunable_weights(model)
    flat = torch.cat([w.detach().abs().flatten().float() for w in weights])
    k = int(round(sparsity * flat.numel()))
    if k == 0:
        return 0
    mask = torch.ones_like(flat, dtype=torch.bool)
    mask[torch.argsort(flat, stable=True)[:k]] = False
    offset = 0
    for w in weights:
        n = w.numel()
        w.mul_(mask[offset:offset + n].view_as(w).to(w.dtype))
        offset += n
    return k


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with torch.inference_mode():
        return int((model(x).argmax(1) == y).sum())


def _robust_correct(model, x, y, attack: AttackSpec, bs: int, autocast, gen) -> tuple[int, int, int]:
    """(clean, fgsm, pgd) correct counts, batched."""
    clean = fg = pg = 0
    for s in range(0, len(y), bs):
        xb, yb = x[s:s + bs], y[s:s + bs]
        clean += _correct(model, xb, yb)
        with frozen_weights(model):
            fg += _correct(model, fgsm(model, xb, yb, eps=attack.eps, autocast=autocast), yb)
            adv = pgd(model, xb, yb, eps=attack.eps, step_size=attack.step_size, steps=attack.steps,
                      random_start=attack.random_start, generator=gen, autocast=autocast)
            pg += _correct(model, adv, yb)
    return clean, fg, pg


def autoattack_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, cfg: TrialConfig,
                       device: torch.device) -> int:
    from pyautoattack import AutoAttack

    aa = AutoAttack(model, eps=eps, norm="Linf", version=cfg.eval.autoattack.version,
                    seed=cfg.data.split_seed, device=device)
    aa.verbose = False
    with frozen_weights(model):
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=cfg.eval.autoattack.batch_size)
    # a perturbation outside the ε-ball or the image box would make the number meaningless
    if (x_adv - x).abs().max() > eps + 1e-5 or x_adv.min() < 0 or x_adv.max() > 1:
        raise RuntimeError("AutoAttack returned inputs outside the ε-ball or [0, 1]")
    return _correct(model, x_adv, y)


def evaluate_weights(cfg: TrialConfig, model: nn.Module, state: dict, data: data_mod.TrialData,
                     which: str, epoch: int, device: torch.device,
                     autocast: contextlib.AbstractContextManager | None = None) -> list[dict]:
    """Rows (schema EVAL_COLUMNS) for weights `state` at every configured sparsity."""
    attack = resolved_eval_attack(cfg)
    n = final_examples(cfg, len(data.test))
    x = data_mod.to_float(data.test.x[:n])
    y = data.test.y[:n]
    net = copy.deepcopy(model)
    rows = []
    for s in sparsities(cfg):
        net.load_state_dict(state)
        net.eval()
        prune_global(net, s)
        gen = torch.Generator(device).manual_seed(cfg.data.split_seed + 11)
        clean, fg, pg = _robust_correct(net, x, y, attack, cfg.eval.batch_size,
                                        autocast or contextlib.nullcontext(), gen)
        aa = math.nan
        if cfg.eval.autoattack.enabled and s == 0.0:
            aa = autoattack_correct(net, x, y, attack.eps, cfg, device) / n
        row = cfg.key_columns() | {"checkpoint": which, "epoch": epoch, "sparsity": s, "examples": n,
                               "clean_acc": clean / n, "fgsm_acc": fg / n, "pgd_acc": pg / n,
                               "autoattack_acc": aa}
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


def final_evaluations(tr: Trainer, best: dict | None) -> list[dict]:
    """Evaluate the last weights and the best (by val robust accuracy) weights of a finished trial."""
    attack = resolved_eval_attack(tr.config)
    if attack.kind == "none" or not attack.eps:
        return []  # natural evaluation only: nothing to check robustness against
    last_state = copy.deepcopy(tr.model.state_dict())
    rows = evaluate_weights(tr.config, tr.model, last_state, tr.data, "last", tr.epoch, tr.device,
                            tr.autocast)
    if best is not None:
        rows += evaluate_weights(tr.config, tr.model, best["model"], tr.data, "best", best["epoch"],
                                 tr.device, tr.autocast)
    tr.model.load_state_dict(last_state)
    return rows
