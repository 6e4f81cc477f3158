"""The arms beyond fixed and adaptive decay, and the TRADES objective, against their defining formulas.

Each arm is checked through the real training step (`trials.train.train_step`) against a hand-written
reference of its paper's update, over several steps, and against an arm it must differ from.
"""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from helpers.trial import DIGITS, small_cnn

from trials import arms
from trials.arms.rescale import scale_invariant_weights
from trials.arms.softad import soft_ascent_descent
from trials.attacks import trades_attack
from trials.config import Attack
from trials.models import decayed_parameters
from trials.train import per_example_loss, train_step

NATURAL = Attack("none", 0.0, 1, 0.0)  # clean batches: the arms are compared on the same inputs
LR, MOMENTUM, STEPS = 0.1, 0.9, 4


def batch(seed: int = 0, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, DIGITS.channels, DIGITS.size, DIGITS.size, generator=g)
    return x, torch.randint(0, 10, (n,), generator=g)


def run_arm(kind: str, factors: list[float], model: torch.nn.Module | None = None, **hp) -> torch.nn.Module:
    """STEPS steps of `train_step` with arm `kind`; factors[i] is lr_t/lr_0 of step i."""
    model = model or small_cnn()
    model.train()
    target = model if arms.takes_model(kind) else decayed_parameters(model, "all")
    hooks = arms.build(kind, target, **hp)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for i, factor in enumerate(factors):
        hooks.set_progress(i / len(factors))
        x, y = batch(i)
        train_step(model, optimizer, hooks, x, y, NATURAL, LR * factor, factor)
    return model


def states_equal(a: torch.nn.Module, b: torch.nn.Module, **tol) -> bool:
    return all(torch.allclose(p, q, **tol) for p, q in zip(a.state_dict().values(), b.state_dict().values(),
                                                             strict=True))


# --------------------------------------------------------------------------- decoupled


def sgdw_reference(model: torch.nn.Module, lam: float, factors: list[float]) -> torch.nn.Module:
    """Loshchilov & Hutter's SGDW written out: momentum on the bare gradient, then w ← w·(1 − (lr_t/lr_0)·λ)."""
    model.train()
    buffers = {id(p): torch.zeros_like(p) for p in model.parameters()}
    for i, factor in enumerate(factors):
        x, y = batch(i)
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                buf = buffers[id(p)]
                buf.mul_(MOMENTUM).add_(p.grad) if i else buf.copy_(p.grad)
                p.sub_(LR * factor * buf)
                p.mul_(1 - factor * lam)
    return model


def test_decoupled_equals_a_hand_written_sgdw_and_differs_from_coupled_decay():
    factors, lam = [1.0, 0.8, 0.5, 0.2], 0.05
    ours = run_arm("decoupled", factors, lam=lam)
    reference = sgdw_reference(small_cnn(), lam, factors)
    assert states_equal(ours, reference, rtol=1e-5, atol=1e-6)
    coupled = run_arm("fixed", factors, lam=lam)
    assert not states_equal(ours, coupled, rtol=1e-3, atol=1e-4), "decoupled must not be coupled decay"
    plain = run_arm("fixed", factors, lam=0.0)
    assert not states_equal(ours, plain, rtol=1e-3, atol=1e-4), "the decay did nothing"


# ----------------------------------------------------------------------------- rescale


@pytest.mark.parametrize("granularity", ["layer", "filter"])
def test_rescale_keeps_every_scale_invariant_weight_at_unit_norm_and_leaves_the_head(granularity):
    model = small_cnn()
    invariant = scale_invariant_weights(model)
    head_before = model[1].head.weight.detach().clone()
    assert len(invariant) == 3 and all(w.dim() == 4 for w in invariant), "the three convs feed BatchNorm"
    hooks = arms.build("rescale", model, granularity=granularity)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.train()
    for i in range(STEPS):
        x, y = batch(i)
        train_step(model, optimizer, hooks, x, y, NATURAL, LR)
        for w in invariant:
            norms = w.detach().flatten(1).norm(dim=1) if granularity == "filter" else w.detach().norm().view(1)
            assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5), f"step {i}: not unit norm"
        assert float(hooks.prescale_norm) > 0
    assert not torch.equal(model[1].head.weight, head_before), "the head trains"
    # the head gets no decay: after a step its update is exactly plain momentum SGD's
    plain = small_cnn().train()
    sgd = torch.optim.SGD(plain.parameters(), lr=LR, momentum=MOMENTUM)
    x, y = batch(0)
    F.cross_entropy(plain(x), y).backward()
    sgd.step()
    one = run_arm("rescale", [1.0], granularity=granularity)
    assert torch.allclose(one[1].head.weight, plain[1].head.weight, atol=1e-6)
    assert torch.allclose(one[1].head.bias, plain[1].head.bias, atol=1e-6)


def test_rescale_refuses_a_bare_parameter_list():
    with pytest.raises(TypeError, match="needs the model"):
        arms.build("rescale", list(small_cnn().parameters()), granularity="layer")


# ---------------------------------------------------------------------------- windowed


def test_windowed_is_fixed_decay_inside_its_window_and_plain_sgd_outside():
    factors = [1.0] * STEPS  # run_arm sets the progress i/STEPS before step i: 0, .25, .5, .75
    lam = 0.05
    early = run_arm("windowed", factors, lam=lam, start=0.0, stop=0.5)
    # by hand: two steps of coupled decay λ, then two of plain SGD (same momentum buffer)
    model = small_cnn()
    model.train()
    fixed, plain = arms.build("fixed", decayed_parameters(model, "all"), lam=lam), \
        arms.build("fixed", decayed_parameters(model, "all"), lam=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for i in range(STEPS):
        x, y = batch(i)
        train_step(model, optimizer, fixed if i < 2 else plain, x, y, NATURAL, LR)
    assert states_equal(early, model, rtol=0, atol=0), "windowed ≠ fixed-then-plain"
    whole = run_arm("windowed", factors, lam=lam, start=0.0, stop=1.0)
    assert states_equal(whole, run_arm("fixed", factors, lam=lam), rtol=0, atol=0)
    never = run_arm("windowed", factors, lam=lam, start=0.9, stop=1.0)
    assert states_equal(never, run_arm("fixed", factors, lam=0.0), rtol=0, atol=0)


def test_windowed_grid_refuses_a_window_that_closes_before_it_opens():
    from orchestrator.errors import UserError
    from orchestrator.spec import study_from_dict

    raw = {"methods": {"ew": {"kind": "windowed", "lambda": [5e-4], "start": [0.5], "stop": [0.25]}}}
    with pytest.raises(UserError, match=r"methods\.ew: start 0\.5 is not before stop 0\.25"):
        study_from_dict(raw, "s.yaml")


# ------------------------------------------------------------------------------ softad


def test_softad_loss_and_gradient_equal_the_closed_form():
    g = torch.Generator().manual_seed(3)
    losses = (torch.rand(64, generator=g) * 3).requires_grad_(True)
    theta, sigma = 0.7, 1.3
    value = soft_ascent_descent(losses, theta, sigma)
    x = (losses.detach() - theta) / sigma
    expected = theta + sigma**2 * (torch.sqrt(1 + x**2) - 1).mean()
    assert torch.allclose(value, expected, atol=1e-6)
    (grad,) = torch.autograd.grad(value, losses)
    # d/dℓᵢ = σ²·ρ′(xᵢ)/(σ·n) = σ·xᵢ/√(1+xᵢ²)/n: below θ the gradient is negative (ascent)
    assert torch.allclose(grad, sigma * x / torch.sqrt(1 + x**2) / len(losses), atol=1e-6)
    assert bool((grad[losses.detach() < theta] < 0).all()) and bool((grad[losses.detach() > theta] > 0).all())


def test_softad_arm_trains_on_the_soft_loss_without_decay():
    ours = run_arm("softad", [1.0] * STEPS, theta=0.5, sigma=1.0)
    assert not states_equal(ours, run_arm("fixed", [1.0] * STEPS, lam=0.0), rtol=1e-4, atol=1e-5)
    hooks = arms.build("softad", decayed_parameters(small_cnn(), "all"), theta=0.5, sigma=1.0)
    assert float(hooks.coefficient) == 0.0


# ------------------------------------------------------------------------------ TRADES


def test_trades_loss_equals_the_formula():
    model = small_cnn().train()
    x, y = batch(1)
    attack = Attack("pgd", 0.2, 3, 0.05, objective="trades", beta=6.0)
    reference = copy.deepcopy(model)  # the loss's train-mode forwards move BatchNorm's running statistics
    per_example, logits_adv = per_example_loss(model, x, y, attack, generator=torch.Generator().manual_seed(0),
                                               autocast=contextlib.nullcontext())
    x_adv = trades_attack(reference, x, eps=0.2, step_size=0.05, steps=3, generator=torch.Generator().manual_seed(0))
    assert model.training and reference.training, "the loss is taken in train mode"
    p_clean = F.softmax(reference(x), 1)
    kl = (p_clean * (torch.log(p_clean) - F.log_softmax(reference(x_adv), 1))).sum(1)
    expected = F.cross_entropy(reference(x), y, reduction="none") + 6.0 * kl
    assert torch.allclose(per_example, expected, atol=1e-5)
    assert torch.allclose(logits_adv, reference(x_adv), atol=1e-5)


def test_trades_attack_increases_the_kl_within_the_ball_in_eval_mode():
    model = small_cnn()
    trained = run_arm("fixed", [1.0] * STEPS, model=copy.deepcopy(model), lam=0.0)
    trained.train()
    x, _ = batch(2)
    modes = []
    hook = trained.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    x_adv = trades_attack(trained, x, eps=0.2, step_size=0.05, steps=5, generator=torch.Generator().manual_seed(0))
    hook.remove()
    assert trained.training and not any(modes), "attacked in eval mode, mode restored"
    assert float((x_adv - x).abs().max()) <= 0.2 + 1e-6 and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    trained.eval()
    with torch.no_grad():
        p = F.softmax(trained(x), 1)

        def kl(z: torch.Tensor) -> float:
            return float((p * (torch.log(p) - F.log_softmax(trained(z), 1))).sum())

        start = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        assert kl(x_adv) > 10 * max(kl(start), 1e-6), "the attack did not increase the KL"
        assert math.isfinite(kl(x_adv))


# ------------------------------------------------------------------------ every arm, end to end


@pytest.mark.slow
def test_a_study_with_every_arm_validates_sweeps_and_reports(tmp_path):
    """studies/digits_arms.yaml shrunk (300 images, 2 epochs, 1 seed): every kind through Ray to a report."""
    import pandas as pd
    import yaml
    from helpers.sweep import REPO, decaylab

    study = yaml.safe_load((REPO / "studies" / "digits_arms.yaml").read_text())
    study |= {"name": "arms", "seeds": [0], "train": {**study["train"], "epochs": 2},
              "data": {**study["data"], "subset": 300},
              "eval": {"val_examples": 100, "test_examples": 100, "train_examples": 100}}
    study["methods"] |= {"wrs": {"kind": "rescale", "granularity": ["layer", "filter"]},  # grids of several values
                         "early": {"kind": "windowed", "lambda": [5e-3], "stop": [0.25, 0.5]}}
    path = tmp_path / "arms.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    assert decaylab("validate", path).returncode == 0
    out = decaylab("sweep", path, "--storage", tmp_path / "r", timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "r" / "arms"
    trials = pd.read_parquet(run / "trials.parquet")
    assert set(trials["kind"]) == set(arms.KINDS) and set(trials["status"]) == {"ok"}
    assert len(trials) == sum(len(arms.grid_class(a["kind"]).model_validate(a).points())
                              for a in study["methods"].values())
    early = trials[trials["method"] == "early"]
    assert set(early["stop"]) == {0.25, 0.5} and early["lam"].eq(5e-3).all() and early["lambda_awd"].isna().all()
    assert set(trials.loc[trials["method"] == "wrs", "granularity"]) == {"layer", "filter"}
    epochs = pd.read_parquet(run / "epochs.parquet")
    assert epochs.loc[epochs["kind"] == "rescale", "prescale_norm"].gt(0).all()
    assert epochs.loc[epochs["kind"] != "rescale", "prescale_norm"].isna().all()
    report = decaylab("report", run, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert all(name in text for name in study["methods"]), "the report compares every arm"
