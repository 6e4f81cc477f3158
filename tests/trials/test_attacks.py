"""L∞ attacks: the ε-ball, the image box, untouched weights and modes, strength."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers.trial import single_thread, small_cnn, trained_trial

from trials import data as data_mod
from trials.attacks import attack_batch, fgsm, fgsm_rs, pgd
from trials.models import build_model

TOL = 1e-6  # float rounding of the projection (x + δ).clamp(0, 1) − x


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


def batch(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs in [0, 1] with whole rows at the box edges, where the projection onto [0, 1] bites."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=gen)
    x[:, :, 0] = 0.0
    x[:, :, 1] = 1.0
    return x, torch.randint(0, 10, (n,), generator=gen)


def assert_in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert (x_adv - x).abs().max() <= eps + TOL
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert not x_adv.requires_grad


@pytest.mark.parametrize("eps", [8 / 255, 0.1, 0.3])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_stays_in_the_eps_ball_and_the_image_box(eps, random_start):
    model = small_cnn().eval()
    x, y = batch()
    x_adv = pgd(model, x, y, eps=eps, step_size=eps / 2, steps=5, random_start=random_start,
                generator=torch.Generator().manual_seed(1))
    assert_in_ball(x_adv, x, eps)
    assert (x_adv - x).abs().max() > eps / 2, "the attack did not move"


def test_pgd_raises_the_loss():
    model = small_cnn().eval()
    x, y = batch()
    x_adv = pgd(model, x, y, eps=0.2, step_size=0.05, steps=10, random_start=False)
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)


def test_fgsm_rs_stays_in_the_eps_ball():
    model = small_cnn().eval()
    x, y = batch()
    for eps in (0.05, 0.25):
        x_adv = fgsm_rs(model, x, y, eps=eps, step_size=1.25 * eps, generator=torch.Generator().manual_seed(2))
        assert_in_ball(x_adv, x, eps)
        assert_in_ball(attack_batch("fgsm_rs", model, x, y, eps=eps, step_size=1.25 * eps, steps=1), x, eps)


def grads_snapshot(model: nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("entry", ["pgd", "attack_batch"])
def test_attack_leaves_weight_grads_untouched(entry):
    model = small_cnn()
    x, y = batch()
    params = list(model.parameters())
    for i, p in enumerate(params):  # half the weights with an existing gradient, half without
        if i % 2 == 0:
            p.grad = torch.full_like(p, 0.5)
    before = grads_snapshot(model)
    grad_objects = [p.grad for p in params]
    if entry == "pgd":
        pgd(model, x, y, eps=0.1, step_size=0.05, steps=3)
    else:
        attack_batch("pgd", model, x, y, eps=0.1, step_size=0.05, steps=3)
    for p, old, obj in zip(params, before, grad_objects, strict=True):
        if old is None:
            assert p.grad is None
        else:
            assert p.grad is obj and torch.equal(p.grad, old)
        assert p.requires_grad, "the weights must require grad again after the attack"


@pytest.mark.parametrize("train_mode", [True, False])
@pytest.mark.parametrize("kind", ["pgd", "fgsm_rs", "none"])
def test_attack_leaves_the_model_mode_as_found(train_mode, kind):
    model = small_cnn().train(train_mode)
    x, y = batch()
    attack_batch(kind, model, x, y, eps=0.1, step_size=0.05, steps=2)
    pgd(model, x, y, eps=0.1, step_size=0.05, steps=2)
    fgsm(model, x, y, eps=0.1)
    assert all(m.training == train_mode for m in model.modules())


def test_attack_in_eval_mode_does_not_touch_batchnorm_statistics():
    model = small_cnn().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = batch()
    pgd(model, x, y, eps=0.1, step_size=0.05, steps=3)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_random_start_is_reproducible_with_a_seeded_generator():
    model = small_cnn().eval()
    x, y = batch()

    def run(seed: int) -> torch.Tensor:
        return pgd(model, x, y, eps=0.2, step_size=0.02, steps=2, random_start=True,
                   generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_none_returns_the_inputs():
    model = small_cnn()
    x, y = batch()
    out = attack_batch("none", model, x, y, eps=0.1, step_size=0.05, steps=3)
    assert torch.equal(out, x)


def test_unknown_attack_kind_is_an_error():
    model = small_cnn()
    x, y = batch()
    with pytest.raises(ValueError, match="unknown attack kind"):
        attack_batch("cw", model, x, y, eps=0.1, step_size=0.05, steps=3)
    assert all(p.requires_grad for p in model.parameters())


def test_on_a_trained_model_pgd_accuracy_is_below_fgsm_and_clean():
    config, _, final = trained_trial()
    data = data_mod.load(config.data, config.label_noise)
    model = build_model(config.model, data.info)
    model.load_state_dict(final["model"])
    model.eval()
    x, y = data_mod.to_float(data.test.x), data.test.y
    eps = config.attack.train.eps

    def acc(inputs: torch.Tensor) -> float:
        with torch.no_grad():
            return float((model(inputs).argmax(1) == y).double().mean())

    clean = acc(x)
    fgsm_acc = acc(fgsm(model, x, y, eps=eps))
    pgd_acc = acc(pgd(model, x, y, eps=eps, step_size=eps / 4, steps=10,
                      generator=torch.Generator().manual_seed(0)))
    assert clean >= 0.6, "the shared trained model did not learn"
    assert pgd_acc <= fgsm_acc <= clean
    assert pgd_acc < clean - 0.1, "PGD hardly hurts: a broken attack or gradient masking"
