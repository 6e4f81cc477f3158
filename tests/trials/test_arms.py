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
from helpers.trial import DIGITS, single_thread, small_cnn, small_trial_config

from trials import arms
from trials.arms.base import global_norm
from trials.arms.rescale import scale_invariant_weights
from trials.arms.reweight import instance_weights, reweighted_loss
from trials.arms.softad import soft_ascent_descent
from trials.attacks import trades_attack
from trials.config import Attack, GridPoint, ModelConfig, trial_id
from trials.models import build_model, decayed_parameters
from trials.train import build_trainer, per_example_loss, train_epoch, train_step

NATURAL = Attack("none", 0.0, 1, 0.0)  # clean batches: the arms are compared on the same inputs
LR, MOMENTUM, STEPS = 0.1, 0.9, 4


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


def batch(seed: int = 0, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, DIGITS.channels, DIGITS.size, DIGITS.size, generator=g)
    return x, torch.randint(0, 10, (n,), generator=g)


def run_arm(kind: str, factors: list[float], model: torch.nn.Module | None = None, **hp) -> torch.nn.Module:
    """STEPS steps of `train_step` with arm `kind`; factors[i] is lr_t/lr_0 of step i."""
    model = model or small_cnn()
    model.train()
    hooks = arms.build(kind, decayed_parameters(model, "all"), model=model if arms.takes_model(kind) else None,
                       **hp)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for i, factor in enumerate(factors):
        hooks.set_progress(i / len(factors), i)
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


def build_rescale(model: torch.nn.Module, decay: str = "all", **hp) -> arms.Hooks:
    hp = {"lam": 5e-3, "granularity": "layer", "target": "init", **hp}
    return arms.build("rescale", decayed_parameters(model, decay), model=model, **hp)


def unit_norms(w: torch.Tensor, granularity: str) -> torch.Tensor:
    return w.detach().flatten(1).norm(dim=1) if granularity == "filter" else w.detach().norm().view(1)


@pytest.mark.parametrize("target", ["init", "unit"])
@pytest.mark.parametrize("granularity", ["layer", "filter"])
def test_rescale_holds_every_scale_invariant_weight_at_its_target_norm(granularity, target):
    model = small_cnn()
    invariant = scale_invariant_weights(model)
    assert len(invariant) == 3 and all(w.dim() == 4 for w in invariant), "the three convs feed BatchNorm"
    initial = [unit_norms(w, granularity).clone() for w in invariant]
    hooks = build_rescale(model, granularity=granularity, target=target)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.train()
    for i in range(STEPS):
        x, y = batch(i)
        train_step(model, optimizer, hooks, x, y, NATURAL, LR)
        for w, norm0 in zip(invariant, initial, strict=True):
            expected = norm0 if target == "init" else torch.ones_like(norm0)
            # at step 0 with target init: the norms the initialisation gave, so the effective lr is unchanged
            torch.testing.assert_close(unit_norms(w, granularity), expected, rtol=1e-5, atol=0)
        assert float(hooks.prescale_norm) > 0
    assert float(hooks.coefficient) == pytest.approx(5e-3), "lambda_* log the reference λ"


def test_rescale_adds_exactly_lambda_w_to_the_weights_that_are_not_scale_invariant():
    lam = 0.03
    for decay in ("all", "no_bn_bias"):
        model = small_cnn()
        hooks = build_rescale(model, decay, lam=lam)
        invariant = {id(w) for w in scale_invariant_weights(model)}
        decayed = {id(p) for p in decayed_parameters(model, decay)}
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():  # BatchNorm's biases start at 0: λ·0 would hide a missing decay
                p.copy_(torch.randn(p.shape, generator=gen))
                p.grad = torch.randn(p.shape, generator=gen)
        before = {id(p): p.grad.clone() for p in model.parameters()}
        hooks.apply()
        for name, p in model.named_parameters():
            if id(p) in decayed and id(p) not in invariant:
                assert torch.equal(p.grad, torch.add(before[id(p)], p.detach(), alpha=lam)), f"{decay}: {name}"
            else:
                assert torch.equal(p.grad, before[id(p)]), f"{decay}: {name} is scale-invariant or not decayed"
        got = {id(p) for p in model.parameters() if not torch.equal(p.grad, before[id(p)])}
        head = model[1].head
        assert {id(head.weight)} | ({id(head.bias)} if decay == "all" else set()) <= got
        bn = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
        assert (bn <= got) == (decay == "all") and (not bn & got) == (decay != "all"), \
            "BatchNorm's parameters are decayed exactly when train.decay includes them"


def test_rescale_head_takes_the_fixed_arms_first_step():
    # the head is not scale-invariant: it gets coupled decay λ, and the rescaling touches only the convs
    rescaled = run_arm("rescale", [1.0], lam=5e-3, granularity="layer", target="unit")
    fixed = run_arm("fixed", [1.0], lam=5e-3)
    assert torch.equal(rescaled[1].head.weight, fixed[1].head.weight)
    assert torch.equal(rescaled[1].head.bias, fixed[1].head.bias)
    conv = rescaled[1].features[0].weight
    assert not torch.equal(conv, fixed[1].features[0].weight) and float(conv.detach().norm()) == pytest.approx(1.0)


def test_preact_resnet18_has_eight_scale_invariant_convolutions():
    from trials.models import PreActResNet18

    model = PreActResNet18(3, 10)
    convs = {name: m.weight for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    invariant = {id(w) for w in scale_invariant_weights(model)}
    found = sorted(name for name, w in convs.items() if id(w) in invariant)
    # stem 1 + 8 blocks × 2 + 3 projection shortcuts; only each block's conv1 feeds nothing but BatchNorm (bn2):
    # conv2 and the shortcuts feed the residual sum, the stem feeds block 0's bn1 and its identity shortcut
    assert len(convs) == 20
    assert found == [f"layers.{i}.conv1" for i in range(8)]
    assert scale_invariant_weights(build_model(ModelConfig(arch="preact_resnet18"), DIGITS)) != []


def test_rescale_refuses_a_bare_parameter_list():
    with pytest.raises(TypeError, match="needs the model"):
        arms.build("rescale", list(small_cnn().parameters()), lam=0.0, granularity="layer", target="init")


def test_rescale_trials_of_the_earlier_reading_keep_their_ids_and_build_the_same_arm():
    point = {"method": "wrs", "kind": "rescale", "lr": 0.1, "seed": 0}
    earlier = GridPoint(**point, params={"granularity": "layer"})  # stored before lambda and target existed
    same = GridPoint(**point, params={"lam": 0.0, "granularity": "layer", "target": "unit"})
    assert trial_id(earlier) == trial_id(same) == "wrs-layer-lr0.1-s0"
    assert arms.label("rescale", same.params) == "granularity=layer"
    assert trial_id(GridPoint(**point, params={"lam": 5e-4, "granularity": "layer", "target": "init"})) \
        == "wrs-0.0005-layer-init-lr0.1-s0"
    model = small_cnn()
    hooks = arms.build("rescale", decayed_parameters(model, "all"), model=model, granularity="layer")
    assert (hooks.lam, hooks.target) == (0.0, "unit")
    hooks.load_state_dict({"granularity": "filter"})  # an earlier checkpoint's arm state
    assert hooks.granularity == "filter" and all(bool((t == 1).all()) and t.dim() == 1 for t in hooks.targets)


def test_rescale_state_dict_carries_the_target_norms():
    model = small_cnn()
    hooks = build_rescale(model, granularity="filter")
    twin = build_rescale(small_cnn(seed=1), granularity="filter")
    twin.load_state_dict(hooks.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(twin.targets, hooks.targets, strict=True))


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
    from orchestrator.study.load import study_from_dict

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


# ----------------------------------------------------------------------------- reweight


def test_reweight_weights_loss_and_gradient_equal_the_hand_computation():
    losses = torch.tensor([0.2, 1.0, 2.5, 0.7], requires_grad=True)
    tau = 0.8
    value = reweighted_loss(losses, tau)
    e = [math.exp(v / tau) for v in (0.2, 1.0, 2.5, 0.7)]
    w = [v / sum(e) for v in e]
    assert instance_weights(losses, tau).tolist() == pytest.approx(w, rel=1e-6)
    expected = sum(wi * li for wi, li in zip(w, (0.2, 1.0, 2.5, 0.7), strict=True))
    assert float(value.detach()) == pytest.approx(expected, rel=1e-6)
    (grad,) = torch.autograd.grad(value, losses)
    # stop-gradient: ∂L/∂ℓᵢ = wᵢ (differentiating through the weights would add wᵢ·(ℓᵢ − L)/τ)
    assert grad.tolist() == pytest.approx(w, rel=1e-6)


def test_reweight_is_stable_for_huge_losses_and_tends_to_the_mean_and_the_max():
    losses = torch.tensor([1e4, 2e4, 3e4])
    w = instance_weights(losses, 0.1)
    assert bool(torch.isfinite(w).all()) and w.tolist() == [0.0, 0.0, 1.0]
    assert float(reweighted_loss(losses, 0.1)) == 3e4, "τ → 0: the worst example"
    g = torch.Generator().manual_seed(0)
    losses = torch.rand(32, generator=g) * 3
    assert float(reweighted_loss(losses, 1e9)) == pytest.approx(float(losses.mean()), rel=1e-6), "τ → ∞: the mean"
    assert torch.allclose(instance_weights(losses, 1e9), torch.full((32,), 1 / 32))


def test_reweight_arm_minimises_the_weighted_loss_and_logs_the_concentration():
    model = small_cnn().train()
    reference = copy.deepcopy(model)
    hooks = arms.build("reweight", decayed_parameters(model, "all"), tau=0.5)
    x, y = batch(0)
    out = train_step(model, torch.optim.SGD(model.parameters(), lr=LR), hooks, x, y, NATURAL, LR)
    with torch.no_grad():
        ce = F.cross_entropy(reference(x), y, reduction="none")
    w = torch.softmax(ce / 0.5, 0)
    assert float(out.loss) == pytest.approx(float((w * ce).sum()), rel=1e-5), "train_loss is the weighted loss"
    assert float(out.adv_ce) == pytest.approx(float(ce.mean()), rel=1e-5)
    assert float(out.stats["weight_concentration"]) == pytest.approx(float(w.max() * len(w)), rel=1e-5)
    assert float(out.stats["lambda"]) == 0.0


# ---------------------------------------------------------------------------- scheduled


def test_scheduled_grid_names_schedules_and_keeps_the_lists_out_of_the_grid():
    cls = arms.grid_class("scheduled")
    grid = cls.model_validate({"kind": "scheduled", "schedule": ["awd", "flat"],
                               "schedules": {"awd": [5e-3, 1e-3], "flat": 5e-4, "unused": [0]}})
    assert cls.hyperparameters() == ["schedule"]
    assert grid.points() == [{"schedule": "awd"}, {"schedule": "flat"}]
    assert grid.series({"schedule": "awd"}) == {"values": (5e-3, 1e-3)}
    assert grid.series({"schedule": "flat"}) == {"values": (5e-4,)}
    assert cls.label({"schedule": "awd"}) == "schedule=awd"
    columns = arms.hyperparameter_columns()
    assert columns["schedule"] == "string" and "schedules" not in columns
    for bad, message in (({"schedule": ["nope"], "schedules": {"awd": [1e-3]}}, "not in schedules"),
                         ({"schedule": ["awd"], "schedules": {"awd": []}}, "empty"),
                         ({"schedule": ["awd"], "schedules": {"awd": [-1e-3]}}, "≥ 0"),
                         ({"schedule": ["a-b"], "schedules": {"a-b": [1e-3]}}, "trial ids")):
        with pytest.raises(ValueError, match=message):
            cls.model_validate({"kind": "scheduled", **bad})


def test_scheduled_trial_applies_the_listed_lambda_in_each_epoch_and_holds_the_last():
    values = (2e-2, 5e-3)  # shorter than the 3 epochs: epoch 2 keeps 5e-3
    base = small_trial_config(epochs=3)
    point = GridPoint(arm="sched", kind="scheduled", params={"schedule": "s"}, lr=0.1, seed=0,
                      series={"values": values})
    ours = build_trainer(base.model_copy(update={"point": point}), "cpu")
    reference = build_trainer(base, "cpu")  # the fixed arm, its λ replaced by hand before every epoch
    rows = []
    for epoch, lam in enumerate((2e-2, 5e-3, 5e-3)):
        reference.arm = arms.build("fixed", decayed_parameters(reference.model, "all"), lam=lam)
        rows.append(train_epoch(ours))
        train_epoch(reference)
        ours.epoch = reference.epoch = epoch + 1
        assert rows[-1]["lambda_min"] == rows[-1]["lambda_max"] == pytest.approx(lam), f"epoch {epoch}"
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(ours.model.state_dict()[name], tensor), name
    assert ours.arm.state_dict()["values"] == list(values)


def test_scheduled_needs_its_series():
    with pytest.raises(TypeError, match="series values"):
        arms.build("scheduled", decayed_parameters(small_cnn(), "all"), schedule="awd")


# ----------------------------------------------------------------------------- adaptive


def test_adaptive_avg_is_the_weight_of_the_previous_lambda_bar():
    params = decayed_parameters(small_cnn(), "all")
    hooks = arms.build("adaptive", params, lambda_awd=0.02, avg=0.5)
    gen = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    ratio = float(global_norm([p.grad for p in params]) / global_norm([p.detach() for p in params]))
    hooks.apply()
    assert float(hooks.lam_bar) == pytest.approx(0.5 * 0.02 * ratio, rel=1e-5)
    assert arms.build("adaptive", params, lambda_awd=0.02).avg == 0.1, "a stored config without avg: 0.1"


def test_adaptive_avg_is_left_out_of_ids_and_labels_at_its_default():
    cls = arms.grid_class("adaptive")
    assert cls.label({"lambda_awd": 0.02, "avg": 0.1}) == "λ_awd=0.02"
    assert cls.label({"lambda_awd": 0.02, "avg": 0.5}) == "λ_awd=0.02, avg=0.5"
    point = {"method": "awd", "kind": "adaptive", "lr": 0.1, "seed": 0}
    assert trial_id(GridPoint(**point, params={"lambda_awd": 0.02, "avg": 0.1})) == "awd-0.02-lr0.1-s0"
    assert trial_id(GridPoint(**point, params={"lambda_awd": 0.02})) == "awd-0.02-lr0.1-s0", "ids of earlier runs"
    assert trial_id(GridPoint(**point, params={"lambda_awd": 0.02, "avg": 0.5})) == "awd-0.02-0.5-lr0.1-s0"


def test_results_written_before_avg_existed_read_with_nan():
    import pandas as pd

    from trials.schema import EPOCH_COLUMNS, conform

    added = {"avg", "tau", "train_adv_ce", "val_clean_loss", "ema_val_robust_acc", "weight_concentration"}
    old = pd.DataFrame([{c: 0.0 for c, t in EPOCH_COLUMNS.items() if t in ("float64", "int64") and c not in added}])
    frame = conform(old, EPOCH_COLUMNS)
    assert all(math.isnan(frame.loc[0, c]) for c in added)
    assert math.isnan(frame.loc[0, "avg"]) and math.isnan(frame.loc[0, "train_adv_ce"])


# -------------------------------------------------------------------------- decay units


def test_every_arm_says_what_its_lambda_columns_hold():
    expected = {"fixed": ("λ", "coupled L2 coefficient"), "adaptive": ("λ", "coupled L2 coefficient"),
                "decoupled": ("λ·lr_t/lr_0", "per-step shrink factor"), "softad": None, "reweight": None,
                "windowed": ("λ", "coupled L2 coefficient"), "scheduled": ("λ", "coupled L2 coefficient")}
    for kind in arms.KINDS:
        assert "DECAY_QUANTITY" in vars(arms.grid_class(kind)), f"{kind} does not declare DECAY_QUANTITY"
        if kind in expected:
            assert arms.decay_quantity(kind) == expected[kind], kind
    rescale = arms.decay_quantity("rescale")
    assert rescale[0] == "λ" and rescale != arms.decay_quantity("fixed"), "another parameter set: its own axis"


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


def test_trades_step_logs_its_objective_as_the_loss_and_the_ce_on_x_adv_as_adv_ce():
    model = small_cnn().train()
    reference = copy.deepcopy(model)
    x, y = batch(1)
    attack = Attack("pgd", 0.2, 3, 0.05, objective="trades", beta=6.0)
    hooks = arms.build("fixed", decayed_parameters(model, "all"), lam=0.0)
    out = train_step(model, torch.optim.SGD(model.parameters(), lr=LR), hooks, x, y, attack, LR,
                     generator=torch.Generator().manual_seed(0))
    x_adv = trades_attack(reference, x, eps=0.2, step_size=0.05, steps=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits_clean, logits_adv = reference(x), reference(x_adv)
        p_clean = F.softmax(logits_clean, 1)
        kl = (p_clean * (torch.log(p_clean) - F.log_softmax(logits_adv, 1))).sum(1)
        objective = (F.cross_entropy(logits_clean, y, reduction="none") + 6.0 * kl).mean()
        adv_ce = F.cross_entropy(logits_adv, y)
    assert float(out.loss) == pytest.approx(float(objective), rel=1e-5)
    assert float(out.adv_ce) == pytest.approx(float(adv_ce), rel=1e-5)
    assert abs(float(out.loss) - float(out.adv_ce)) > 1e-3, "the TRADES objective is not the CE on x_adv"


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


def every_arm_study(tmp_path, confirm: bool = False):
    """studies/digits_arms.yaml shrunk (300 images, 2 epochs, 1 seed), with every kind and several values of
    some; without its confirmation stage unless `confirm`. Returns the study file's path and its sections."""
    import yaml
    from helpers.sweep import REPO

    study = yaml.safe_load((REPO / "studies" / "digits_arms.yaml").read_text())
    if not confirm:
        study.pop("confirm")  # tuning trials only: the confirmation stage has its own tests
    study |= {"name": "arms", "seeds": [0], "train": {**study["train"], "epochs": 2},
              "data": {**study["data"], "subset": 300},
              "eval": {"val_examples": 100, "test_examples": 100, "train_examples": 100}}
    study["methods"] |= {"wrs": {"kind": "rescale", "lambda": [5e-3], "granularity": ["layer", "filter"]},
                         "early": {"kind": "windowed", "lambda": [5e-3], "stop": [0.25, 0.5]},  # several values
                         "done": {"kind": "reweight", "tau": [1.0]},
                         "replay": {"kind": "scheduled", "schedule": ["down"], "schedules": {"down": [5e-3, 5e-4]}}}
    path = tmp_path / "arms.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path, study


def test_every_arms_entries_reach_a_ray_worker_as_the_same_trials(tmp_path):
    """What the Ray executor adds to the local one, for an arm: each entry's flat parameters travel in a Tune
    config, pickled to a worker, which rebuilds the member trials from them (`entry_members`, the function
    the worker calls). Checked here for every kind, tuning and confirmation entries, without a cluster; the
    Ray path itself runs in the tests marked `ray`."""
    import pickle

    from orchestrator.ray.executor import entry_members
    from orchestrator.study.load import load_study
    from orchestrator.study.plan import confirmation_entries, grid_entries

    path, _ = every_arm_study(tmp_path, confirm=True)
    study = load_study(path)
    selected = {(arm, 0.0): (grid.points()[-1], study.lr[-1]) for arm, grid in study.arms.items()}
    entries = grid_entries(study) + confirmation_entries(study, selected)
    assert {e.params["kind"] for e in entries} == set(arms.KINDS)
    assert {e.params["stage"] for e in entries} == {"tune", "confirm"}
    for entry in entries:
        config = {"run_dir": str(tmp_path), "device": "cpu", "threads": 1, "key": entry.key, **entry.params}
        assert all(isinstance(k, str) and "/" not in k for k in config), "Tune nests a key holding '/'"
        assert entry_members(study, pickle.loads(pickle.dumps(config))) == entry.members, entry.key


@pytest.mark.slow
def test_a_study_with_every_arm_validates_sweeps_and_reports(tmp_path):
    """Every kind, several values of some, from the study file to a report (the local executor: what Ray adds
    for an arm is checked above)."""
    import pandas as pd
    from helpers.sweep import decaylab

    path, study = every_arm_study(tmp_path)
    assert decaylab("validate", path).returncode == 0
    out = decaylab("sweep", path, "--storage", tmp_path / "r", "--executor", "local", timeout=900)
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
    assert epochs.loc[epochs["method"] == "replay", "lambda_mean"].tolist() == pytest.approx([5e-3, 5e-4])
    report = decaylab("report", run, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert all(name in text for name in study["methods"]), "the report compares every arm"
