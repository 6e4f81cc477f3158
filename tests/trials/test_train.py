"""One trial end to end: learning, divergence, resume, pairing, schema, syncs."""

from __future__ import annotations

import copy
import itertools
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers.trial import (
    count_host_reads,
    rows_equal,
    single_thread,
    small_cnn,
    small_trial_config,
    trained_trial,
    trial_config,
)

from trials import data as data_mod
from trials import train as train_mod
from trials.arms.softad import soft_ascent_descent
from trials.attacks import pgd
from trials.averaging import WeightAverage
from trials.config import AttackSpec, GridPoint, PruningConfig, TrainAttackSpec, resolved_train_attack
from trials.evaluation import evaluate_weights, prune, sanity_problems
from trials.models import build_model, prunable_weights
from trials.schema import EPOCH_COLUMNS, EVAL_COLUMNS, STATUSES, conform
from trials.train import arm_hooks, build_trainer, evaluate_epoch, lr_factor, run_trial, train_epoch, train_step

EVAL_METRICS = ("val_clean_acc", "val_robust_acc", "test_clean_acc", "test_robust_acc", "train_clean_acc")
ACCURACIES = (*EVAL_METRICS, "train_robust_acc", "noisy_fit_acc")


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


def collect(config, state=None) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    final = run_trial(config, lambda row, checkpoint: rows.append(row), state=state, device="cpu")
    return rows, final


# ------------------------------------------------------------------------------ learning


def test_pgd_training_on_digits_learns_far_beyond_chance():
    _, rows, final = trained_trial()
    last = rows[-1]
    assert final["status"] == "ok" and last["status"] == "ok"
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    assert last["val_clean_acc"] >= 0.6 and last["test_clean_acc"] >= 0.6, "chance is 0.1"
    assert last["val_robust_acc"] >= 0.2 and last["test_robust_acc"] >= 0.2, "chance is 0.1"
    assert last["train_loss"] < rows[0]["train_loss"]


@pytest.mark.slow
def test_awd_training_on_digits_learns_and_holds_the_decay_to_gradient_ratio():
    lambda_awd = 0.02
    rows, final = collect(trial_config(kind="adaptive", value=lambda_awd, epochs=5, lr=0.1))
    last = rows[-1]
    assert final["status"] == "ok"
    assert last["val_clean_acc"] >= 0.6 and last["val_robust_acc"] >= 0.2, "chance is 0.1"
    for row in rows:  # λ̄ = λ_awd·‖g‖/‖w‖ on average (per-step norms are averaged over the epoch)
        ratio = row["lambda_mean"] * row["weight_norm"] / row["grad_norm"]
        assert ratio == pytest.approx(lambda_awd, rel=0.1), f"epoch {row['epoch']}: ratio {ratio:.4f}"


@pytest.mark.slow
def test_best_checkpoint_is_the_first_epoch_with_the_highest_val_robust_accuracy(monkeypatch, tmp_path):
    scripted = [0.3, 0.5, 0.5, 0.4]  # val robust accuracy per epoch: best at 2 (first of a tie), not last

    def evaluate(tr) -> dict:
        v = scripted[tr.epoch - 1]
        return train_mod.NAN_EVAL | {"val_clean_acc": 0.9, "val_robust_acc": v, "test_clean_acc": 0.9,
                                     "test_robust_acc": v, "train_clean_acc": 0.9}

    monkeypatch.setattr(train_mod, "evaluate_epoch", evaluate)
    config = small_trial_config(epochs=4)
    checkpoints = {}

    def report(row: dict, checkpoint: dict) -> None:
        checkpoints[row["epoch"]] = tmp_path / f"epoch{row['epoch']}.pt"
        torch.save(checkpoint, checkpoints[row["epoch"]])

    final = run_trial(config, report, device="cpu")
    resumed = run_trial(config, lambda row, checkpoint: None, device="cpu",
                        state=torch.load(checkpoints[3], weights_only=True))
    epoch2_weights = torch.load(checkpoints[2], weights_only=True)["model"]
    for result in (final, resumed):
        assert result["best_epoch"] == 2 and result["best_val_robust_acc"] == 0.5
        assert all(torch.equal(result["best_model"][k], v) for k, v in epoch2_weights.items())
        by_checkpoint = {r["checkpoint"]: r["epoch"] for r in result["evaluations"]}
        assert by_checkpoint == {"best": 2, "last": 4}
    assert rows_equal(resumed["evaluations"], final["evaluations"], ignore=()) == []


# ---------------------------------------------------------------------------- divergence


@pytest.mark.parametrize("kind", ["fixed", "adaptive"])
def test_huge_lr_is_marked_diverged_within_one_epoch_and_keeps_its_row(kind):
    config = small_trial_config(kind=kind, value=0.02, lr=1e6, epochs=3)
    rows, final = collect(config)
    assert len(rows) == 1, "a diverged trial must stop at once"
    (row,) = rows
    assert row["epoch"] == 1 and row["status"] == "diverged" and final["status"] == "diverged"
    assert not math.isfinite(row["train_loss"]) or not math.isfinite(row["grad_norm"])
    assert all(math.isnan(row[k]) for k in EVAL_METRICS)
    assert set(row) == set(EPOCH_COLUMNS)

    again, returned = collect(config, state=final)
    assert again == [], "resuming a finished trial must not train again"
    assert returned["status"] == "diverged" and returned["epoch"] == 1


# -------------------------------------------------------------------------------- resume


@pytest.mark.parametrize(("kind", "value", "ema"), [("fixed", 5e-3, None), ("adaptive", 0.05, None),
                                                    ("fixed", 5e-3, {"decay": 0.8, "start": 0.25})])
@pytest.mark.slow
def test_resume_from_the_epoch_2_checkpoint_gives_the_same_rows(tmp_path, kind, value, ema):
    config = small_trial_config(kind=kind, value=value, epochs=4, lr=0.1, label_noise=0.2, train={"ema": ema})
    path = tmp_path / "epoch2.pt"
    rows: list[dict] = []

    def report(row: dict, checkpoint: dict) -> None:
        rows.append(row)
        if row["epoch"] == 2:  # what the orchestrator does: write the checkpoint to disk at once
            torch.save(checkpoint, path)

    full = run_trial(config, report, device="cpu")
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 2 and state["status"] == "running" and "rows" not in state, "rows are not checkpointed"

    resumed_rows, resumed = collect(config, state=state)
    assert [r["epoch"] for r in resumed_rows] == [3, 4]
    assert rows_equal(resumed_rows, rows[2:]) == []
    assert rows[2]["train_loss"] != rows[3]["train_loss"], "nothing trained: the comparison is vacuous"
    assert resumed["status"] == full["status"] == "ok"
    for name, tensor in full["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    assert resumed["best_epoch"] == full["best_epoch"]
    assert rows_equal(resumed["evaluations"], full["evaluations"], ignore=()) == []
    assert (resumed["ema"] is None) == (full["ema"] is None) == (ema is None)
    if ema is not None:
        assert all(torch.equal(resumed["ema"][k], v) for k, v in full["ema"].items())
        assert resumed["ema_best_epoch"] == full["ema_best_epoch"] > 0
        assert all(torch.equal(resumed["ema_best_model"][k], v) for k, v in full["ema_best_model"].items())
        assert "ema" in {r["checkpoint"] for r in full["evaluations"]}
        assert all(math.isfinite(r["ema_val_robust_acc"]) for r in rows)


def test_checkpoint_of_another_trial_is_refused():
    config = small_trial_config(kind="fixed", value=5e-3, epochs=1)
    other = small_trial_config(kind="fixed", value=5e-3, epochs=1, seed=1)
    state = build_trainer(other, "cpu").state_dict()
    with pytest.raises(ValueError, match="checkpoint of trial"):
        collect(config, state=state)


# ---------------------------------------------------------------------- paired arms


def test_same_seed_gives_the_same_initialisation_and_data_in_both_arms(monkeypatch):
    fixed = build_trainer(small_trial_config(kind="fixed", value=5e-3, seed=4), "cpu")
    adaptive = build_trainer(small_trial_config(kind="adaptive", value=0.05, seed=4), "cpu")
    other_seed = build_trainer(small_trial_config(kind="fixed", value=5e-3, seed=5), "cpu")
    init = fixed.model.state_dict()
    assert all(torch.equal(v, adaptive.model.state_dict()[k]) for k, v in init.items())
    assert not all(torch.equal(v, other_seed.model.state_dict()[k]) for k, v in init.items())

    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    attack = train_mod.attack_batch

    def record(kind, model, x, y, **kwargs):
        seen.append((x.clone(), y.clone()))  # the augmented batch, before the attack
        return attack(kind, model, x, y, **kwargs)

    monkeypatch.setattr(train_mod, "attack_batch", record)
    batches = []
    for trainer in (fixed, adaptive):
        seen = []
        train_epoch(trainer)
        batches.append(seen)
    assert len(batches[0]) == len(batches[1]) == fixed.steps_per_epoch
    for step, ((xf, yf), (xa, ya)) in enumerate(zip(*batches, strict=True)):
        assert torch.equal(xf, xa) and torch.equal(yf, ya), f"step {step}: the arms saw different data"
    assert not torch.equal(fixed.model.state_dict()["1.head.weight"], adaptive.model.state_dict()["1.head.weight"])


# ---------------------------------------------------------------------------- the rows


def test_rows_carry_exactly_the_epoch_columns():
    _, rows, _ = trained_trial()
    diverged, _ = collect(small_trial_config(lr=1e6, epochs=2))
    noisy, _ = collect(small_trial_config(kind="adaptive", value=0.02, epochs=1, label_noise=0.3))
    all_rows = rows + diverged + noisy
    for row in all_rows:
        assert set(row) == set(EPOCH_COLUMNS)
        assert row["status"] in STATUSES
        for key in ACCURACIES:
            assert math.isnan(row[key]) or 0.0 <= row[key] <= 1.0, f"{key}={row[key]} is not a fraction"
    frame = conform(pd.DataFrame(all_rows), EPOCH_COLUMNS)
    assert list(frame.columns) == list(EPOCH_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == EPOCH_COLUMNS
    assert 0.0 <= noisy[0]["noisy_fit_acc"] <= 1.0 and math.isnan(rows[-1]["noisy_fit_acc"])


def test_lambda_columns_report_the_effective_decay():
    config, rows, _ = trained_trial()
    for row in rows:
        for key in ("lambda_min", "lambda_mean", "lambda_max"):
            assert row[key] == pytest.approx(config.params["lam"], rel=1e-5), key
    (awd,), _ = collect(small_trial_config(kind="adaptive", value=0.02, epochs=1))
    assert 0.0 < awd["lambda_min"] <= awd["lambda_mean"] <= awd["lambda_max"]
    assert awd["lambda_awd"] == 0.02 and math.isnan(awd["lam"])
    assert awd["weight_norm"] > 0 and awd["grad_norm"] > 0


@pytest.mark.parametrize(("kind", "value"), [("fixed", 5e-3), ("adaptive", 0.05)])
def test_train_epoch_reads_the_host_once(kind, value):
    trainer = build_trainer(small_trial_config(kind=kind, value=value), "cpu")
    with count_host_reads() as counts:
        train_epoch(trainer)
    assert counts == {"tolist": 1}, f"host reads in train_epoch: {dict(counts)} (only the epoch-end read)"


@pytest.mark.parametrize(("kind", "value"), [("fixed", 5e-3), ("adaptive", 0.05)])
def test_a_training_step_makes_no_host_read(kind, value):
    config = small_trial_config(kind=kind, value=value)
    trainer = build_trainer(config, "cpu")
    model = trainer.model.train()
    wd = arm_hooks(config, model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = data_mod.to_float(trainer.data.train.x[:32]), trainer.data.train.y[:32]
    before = [p.detach().clone() for p in model.parameters()]
    with count_host_reads() as counts:
        for _ in range(2):  # the second step also runs AWD's running average
            train_step(model, optimizer, wd, x, y, resolved_train_attack(config), 0.05)
    assert counts == {}, f"host reads in a training step: {dict(counts)}"
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)), "it trained"


# -------------------------------------------------------------------------- lr schedule


def with_schedule(schedule: str, **kwargs):
    config = small_trial_config()
    return config.model_copy(update={"train": config.train.model_copy(update={"schedule": schedule, **kwargs})})


def test_cosine_schedule_starts_at_1_and_ends_near_0():
    config, total = with_schedule("cosine"), 1000
    factors = [lr_factor(config, step, total) for step in range(total)]
    assert factors[0] == 1.0 and factors[-1] < 1e-4
    assert all(a > b for a, b in itertools.pairwise(factors))
    assert factors[total // 2] == pytest.approx(0.5)


def test_piecewise_schedule_multiplies_by_gamma_at_each_milestone():
    config, total = with_schedule("piecewise", milestones=(0.5, 0.75), gamma=0.1), 100
    expected = {0: 1.0, 49: 1.0, 50: 0.1, 74: 0.1, 75: 0.01, 99: 0.01}
    for step, factor in expected.items():
        assert lr_factor(config, step, total) == pytest.approx(factor), f"step {step}"


def test_constant_schedule_is_constant():
    config = with_schedule("constant")
    assert {lr_factor(config, step, 50) for step in range(50)} == {1.0}


def test_rows_log_the_decayed_learning_rate():
    config, rows, _ = trained_trial()
    lrs = [r["lr_now"] for r in rows]
    assert all(a > b for a, b in itertools.pairwise(lrs))
    assert lrs[-1] < 1e-3 * config.lr


# ---------------------------------------------------------------------- final evaluations


def test_final_evaluations_order_pgd_below_fgsm_below_clean():
    config, rows, final = trained_trial()
    evaluations = final["evaluations"]
    assert sorted(r["checkpoint"] for r in evaluations) == ["best", "last"]
    test_size = len(data_mod.load(config.data, config.label_noise).test)
    for row in evaluations:
        assert set(row) == set(EVAL_COLUMNS)
        assert row["examples"] == test_size and row["sparsity"] == 0.0
        assert row["pgd_acc"] <= row["fgsm_acc"] <= row["clean_acc"], row
        assert row["fgsm_acc"] < row["clean_acc"] - 0.1, "FGSM hardly hurts: a broken attack"
        assert sanity_problems(row) == []
    last = next(r for r in evaluations if r["checkpoint"] == "last")
    assert last["epoch"] == rows[-1]["epoch"]
    assert last["clean_acc"] == pytest.approx(rows[-1]["test_clean_acc"]), "same weights, same examples"


def test_sanity_problems_flags_a_pgd_accuracy_above_fgsm():
    row = {"autoattack_acc": math.nan, "pgd_acc": 0.5, "fgsm_acc": 0.4, "clean_acc": 0.9}
    assert len(sanity_problems(row)) == 1


# ------------------------------------------------------------------------------- pruning


def trained_model() -> tuple[torch.nn.Module, data_mod.TrialData]:
    config, _, final = trained_trial()
    data = data_mod.load(config.data, config.label_noise)
    model = build_model(config.model, data.info)
    model.load_state_dict(final["model"])
    return model.eval(), data


def clean_accuracy(model: torch.nn.Module, split: data_mod.Split) -> float:
    with torch.no_grad():
        return float((model(data_mod.to_float(split.x)).argmax(1) == split.y).double().mean())


@pytest.mark.parametrize("sparsity", [0.3, 0.45, 0.9])  # 0.45·n is not an integer
def test_prune_global_zeroes_the_round_s_n_smallest_weights(sparsity):
    model, _ = trained_model()
    weights = prunable_weights(model)
    before = torch.cat([w.detach().flatten() for w in weights]).clone()
    assert int((before == 0).sum()) == 0, "precondition: no zero weights before pruning"
    prunable_ids = {id(w) for w in weights}
    others = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in prunable_ids}

    k = prune(model, sparsity, "global")
    after = torch.cat([w.detach().flatten() for w in weights])
    zeroed = after == 0
    assert k == round(sparsity * before.numel()) == int(zeroed.sum())
    assert torch.equal(after[~zeroed], before[~zeroed]), "kept weights changed"
    assert before[zeroed].abs().max() <= before[~zeroed].abs().min(), "not the smallest magnitudes"
    for name, p in model.named_parameters():
        if name in others:
            assert torch.equal(p, others[name]), f"{name} is not prunable but changed"


def test_prune_global_at_zero_sparsity_leaves_the_model_unchanged():
    model, data = trained_model()
    state = copy.deepcopy(model.state_dict())
    accuracy = clean_accuracy(model, data.test)
    assert prune(model, 0.0, "global") == 0
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert clean_accuracy(model, data.test) == accuracy


def test_pruning_study_rows_start_at_the_unpruned_accuracy():
    config, _, final = trained_trial()
    model, data = trained_model()
    pruning = PruningConfig(enabled=True, sparsity=(0.5, 0.95))
    config = config.model_copy(update={"eval": config.eval.model_copy(update={"pruning": pruning})})
    state = copy.deepcopy(model.state_dict())
    rows = evaluate_weights(config, model, [("last", 5, final["model"])], data, torch.device("cpu"))
    assert [r["sparsity"] for r in rows] == [0.0, 0.5, 0.95]
    assert rows[0]["clean_acc"] == pytest.approx(clean_accuracy(model, data.test))
    assert rows[2]["clean_acc"] < rows[0]["clean_acc"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()), "the given model was pruned"


@pytest.mark.slow
def test_weights_evaluated_in_one_copy_give_the_rows_of_separate_evaluations():
    # the best and last weights share one copy of the model, pruned between them: the second set must
    # not see the first's pruning
    config, _, final = trained_trial()
    model, data = trained_model()
    pruning = PruningConfig(enabled=True, sparsity=(0.9,))
    config = config.model_copy(update={"eval": config.eval.model_copy(update={"pruning": pruning})})
    first = {k: v.clone() for k, v in final["model"].items()}
    first[next(k for k in first if k.endswith("weight"))].mul_(0.5)  # other weights than the model's own
    sets = [("best", 3, first), ("last", 5, final["model"])]
    together = evaluate_weights(config, model, sets, data, torch.device("cpu"))
    apart = [row for one in sets for row in evaluate_weights(config, model, [one], data, torch.device("cpu"))]
    assert [(r["checkpoint"], r["epoch"], r["sparsity"]) for r in together] == [
        ("best", 3, 0.0), ("best", 3, 0.9), ("last", 5, 0.0), ("last", 5, 0.9)]
    assert together == apart


def test_prune_layer_scope_is_the_default():
    assert PruningConfig().scope == "layer"


@pytest.mark.parametrize("sparsity", [0.3, 0.45, 0.9])
def test_prune_per_layer_zeroes_the_round_s_n_smallest_weights_of_every_layer(sparsity):
    model, _ = trained_model()
    weights = prunable_weights(model)
    before = [w.detach().clone() for w in weights]
    k = prune(model, sparsity, "layer")
    for w, b in zip(weights, before, strict=True):
        zeroed = w.detach() == 0
        assert int(zeroed.sum()) == round(sparsity * b.numel()), "every layer at the same sparsity"
        assert torch.equal(w.detach()[~zeroed], b[~zeroed]), "kept weights changed"
        assert b[zeroed].abs().max() <= b[~zeroed].abs().min(), "not the layer's smallest magnitudes"
    assert k == sum(round(sparsity * b.numel()) for b in before)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruning_rows_evaluate_the_model_pruned_in_the_configured_scope(scope):
    config, _, final = trained_trial()
    model, data = trained_model()
    pruning = PruningConfig(enabled=True, sparsity=(0.6,), scope=scope)
    config = config.model_copy(update={"eval": config.eval.model_copy(update={"pruning": pruning})})
    rows = evaluate_weights(config, model, [("last", 5, final["model"])], data, torch.device("cpu"))
    by_hand = {}
    for how in ("layer", "global"):
        pruned = copy.deepcopy(model)
        prune(pruned, 0.6, how)
        by_hand[how] = clean_accuracy(pruned, data.test)
    assert rows[1]["sparsity"] == 0.6 and rows[1]["clean_acc"] == pytest.approx(by_hand[scope])
    layer, whole = copy.deepcopy(model), copy.deepcopy(model)
    prune(layer, 0.6, "layer")
    prune(whole, 0.6, "global")
    assert any(not torch.equal(a, b) for a, b in zip(prunable_weights(layer), prunable_weights(whole), strict=True))


# ---------------------------------------------------------------------------- the losses


def with_sections(config, **sections):
    """`config` with some of its sections' fields replaced, e.g. with_sections(c, train={"batch_size": 8})."""
    return config.model_copy(update={name: getattr(config, name).model_copy(update=fields)
                                     for name, fields in sections.items()})


def test_evaluation_losses_are_the_mean_cross_entropies_of_the_accuracies_examples():
    config = small_trial_config(epochs=1)
    deterministic = AttackSpec(kind="pgd", eps=0.2, steps=2, step_size=0.1, random_start=False)
    config = with_sections(config, attack={"eval": deterministic})
    tr = build_trainer(config, "cpu")
    train_epoch(tr)  # away from the initialisation
    out = evaluate_epoch(tr)
    model = copy.deepcopy(tr.model).eval()

    def by_hand(split: data_mod.Split, attacked: bool) -> tuple[float, float]:
        x, y = data_mod.to_float(split.x), split.y
        if attacked:  # the whole split is one evaluation batch (eval.batch_size 512), as here
            x = pgd(model, x, y, eps=0.2, step_size=0.1, steps=2, random_start=False)
        with torch.no_grad():
            logits = model(x).double()
        return float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).double().mean())

    splits = {"val": tr.data.val.take(100), "test": tr.data.test.take(100), "train": tr.data.train.take(100)}
    for name, attacked in (("val_clean", False), ("val_robust", True), ("test_clean", False),
                           ("test_robust", True), ("train_clean", False)):
        loss, acc = by_hand(splits[name.split("_")[0]], attacked)
        assert out[f"{name}_loss"] == pytest.approx(loss, rel=1e-5), name
        assert out[f"{name}_acc"] == pytest.approx(acc), f"{name}: not the accuracy's examples"
    assert out["val_robust_loss"] > out["val_clean_loss"]


def test_train_loss_is_the_arms_objective_and_train_adv_ce_the_plain_cross_entropy():
    """Two steps (150 + 50 examples) at lr 0, so both batches meet the initial weights: train_loss is the
    batch-size-weighted mean of SoftAD's objective per batch, train_adv_ce that of the cross-entropy."""
    natural = TrainAttackSpec(kind="none")
    config = with_sections(small_trial_config(epochs=1, batch_size=150), attack={"train": natural},
                           data={"augment": False})
    point = GridPoint(arm="soft", kind="softad", params={"theta": 0.5, "sigma": 1.0}, lr=0.0, seed=0)
    tr = build_trainer(config.model_copy(update={"point": point}), "cpu")
    model = copy.deepcopy(tr.model).train()
    order = torch.randperm(200, generator=torch.Generator().manual_seed(0))  # the trainer's first draw
    x, y = data_mod.to_float(tr.data.train.x), tr.data.train.y
    objective, ce = 0.0, 0.0
    with torch.no_grad():
        for idx in (order[:150], order[150:]):
            losses = F.cross_entropy(model(x[idx]), y[idx], reduction="none")
            objective += float(soft_ascent_descent(losses, 0.5, 1.0)) * len(idx) / 200
            ce += float(losses.mean()) * len(idx) / 200
    row = train_epoch(tr)
    assert row["train_loss"] == pytest.approx(objective, rel=1e-5)
    assert row["train_adv_ce"] == pytest.approx(ce, rel=1e-5)
    assert abs(row["train_loss"] - row["train_adv_ce"]) > 0.1, "the objective is not the cross-entropy"


# -------------------------------------------------------------------------- weight averaging


def test_weight_average_follows_the_closed_form():
    model = small_cnn()
    average = WeightAverage(model, decay=0.9, start_step=2)
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(0)
    history = []
    for step in range(5):
        with torch.no_grad():
            for p in params:
                p.copy_(torch.randn(p.shape, generator=gen))
        history.append([p.detach().double().clone() for p in params])
        average.update(step)
        if step < 2:  # before `start` the average is a copy of the weights
            assert all(torch.equal(a, p) for a, p in zip(average.model.parameters(), params, strict=True))
    # steps 2, 3, 4 average: w̄ = d³·w₁ + (1 − d)·(d²·w₂ + d·w₃ + w₄)
    for i, a in enumerate(average.model.parameters()):
        w1, w2, w3, w4 = (h[i] for h in history[1:])
        expected = 0.9**3 * w1 + 0.1 * (0.81 * w2 + 0.9 * w3 + w4)
        torch.testing.assert_close(a.double(), expected, rtol=1e-5, atol=1e-6)
    assert not any(a.requires_grad for a in average.model.parameters())


def test_weight_average_takes_batchnorm_statistics_from_the_live_model():
    model = small_cnn().train()
    average = WeightAverage.for_training(model, 0.99, 0.5, total_steps=10)
    assert average.start_step == 5
    model(torch.rand(16, 1, 8, 8))  # moves the live running statistics
    before = [b.clone() for b in average.model.buffers()]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))
    state = average.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(average.model.buffers(), model.buffers(), strict=True))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items() if "running" in k)


def test_trial_without_ema_logs_nan_and_no_ema_evaluation():
    _, rows, final = trained_trial()
    assert all(math.isnan(r[k]) for r in rows for k in train_mod.EMA_ACCURACIES)
    assert final["ema"] is None and final["ema_best_epoch"] == 0
    assert {r["checkpoint"] for r in final["evaluations"]} == {"best", "last"}


@pytest.mark.slow
def test_average_with_a_vanishing_decay_scores_like_the_live_weights():
    config = small_trial_config(epochs=2, train={"ema": {"decay": 1e-9}})
    rows, _ = collect(config)
    for row in rows:
        for name in ("val_clean_acc", "val_robust_acc", "test_clean_acc", "test_robust_acc"):
            assert row[f"ema_{name}"] == pytest.approx(row[name], abs=0.011), (row["epoch"], name)


@pytest.mark.slow
def test_the_average_has_its_own_best_epoch_and_final_evaluation(monkeypatch, tmp_path):
    scripted = [0.2, 0.6, 0.6, 0.5]  # the average's val robust accuracy per epoch: best at 2 (first of a tie)

    def evaluate(tr) -> dict:
        v = scripted[tr.epoch - 1]
        return {"ema_val_clean_acc": 0.9, "ema_val_robust_acc": v, "ema_test_clean_acc": 0.9,
                "ema_test_robust_acc": v}

    monkeypatch.setattr(train_mod, "evaluate_average", evaluate)
    config = small_trial_config(epochs=4, train={"ema": {"decay": 0.5}})
    averages = {}

    def report(row: dict, checkpoint: dict) -> None:
        averages[row["epoch"]] = {k: v.clone() for k, v in checkpoint["ema"].items()}

    final = run_trial(config, report, device="cpu")
    assert final["ema_best_epoch"] == 2 and final["ema_best_val_robust_acc"] == 0.6
    assert all(torch.equal(final["ema_best_model"][k], v) for k, v in averages[2].items())
    assert not all(torch.equal(averages[2][k], v) for k, v in averages[4].items()), "the average moved"
    epochs = {r["checkpoint"]: r["epoch"] for r in final["evaluations"]}
    assert epochs["ema"] == 2 and epochs["last"] == 4


def test_train_epoch_with_ema_reads_the_host_once():
    trainer = build_trainer(small_trial_config(train={"ema": {"decay": 0.9}}), "cpu")
    before = [p.clone() for p in trainer.ema.model.parameters()]
    with count_host_reads() as counts:
        train_epoch(trainer)
    assert counts == {"tolist": 1}, f"host reads in train_epoch: {dict(counts)}"
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.ema.model.parameters(), strict=True))
