"""Fixed and adaptive weight decay: the AWD rule, in-place grads, no host syncs."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers.trial import count_host_reads, single_thread, small_cnn, small_trial_config

from trials.models import decayed_parameters
from trials.train import build_trainer
from trials.weight_decay import AdaptiveWeightDecay, FixedWeightDecay


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


def fill_grads(params: list[nn.Parameter], gen: torch.Generator, scale: float = 1.0) -> list[torch.Tensor]:
    """Random gradients written into the existing `p.grad` tensors (or new ones); returns copies."""
    for p in params:
        g = torch.randn(p.shape, generator=gen) * scale
        if p.grad is None:
            p.grad = g
        else:
            p.grad.copy_(g)
    return [p.grad.detach().clone() for p in params]


def norm64(tensors) -> float:
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in tensors))


def test_awd_lambda_bar_follows_the_recurrence_and_adds_it_to_the_grads():
    params = [p for p in small_cnn().parameters()]
    lambda_awd = 0.05
    awd = AdaptiveWeightDecay(params, lambda_awd)
    gen = torch.Generator().manual_seed(1)
    expected = 0.0
    for step in range(6):
        grads = fill_grads(params, gen, scale=0.1 * (step + 1))  # the gradient norm changes every step
        weights = [p.detach().clone() for p in params]
        expected = 0.1 * expected + 0.9 * lambda_awd * norm64(grads) / norm64(weights)
        lam_bar = awd.apply()
        assert float(lam_bar) == pytest.approx(expected, rel=1e-5), f"step {step}"
        for p, g, w in zip(params, grads, weights, strict=True):
            torch.testing.assert_close(p.grad.double(), g.double() + expected * w.double(),
                                       rtol=1e-5, atol=1e-7)
        with torch.no_grad():  # a plain SGD step, so ‖w‖ changes too
            for p in params:
                p.sub_(0.5 * p.grad)


def test_awd_ratio_of_decay_to_gradient_is_0_9_lambda_awd_at_the_first_step():
    params = list(small_cnn().parameters())
    for lambda_awd in (0.01, 0.02, 0.2):
        awd = AdaptiveWeightDecay(params, lambda_awd)
        grads = fill_grads(params, torch.Generator().manual_seed(2))
        awd.apply()
        decay = [p.grad.double() - g.double() for p, g in zip(params, grads, strict=True)]  # = λ̄·w
        assert norm64(decay) / norm64(grads) == pytest.approx(0.9 * lambda_awd, rel=1e-5)


def test_awd_ratio_converges_to_lambda_awd_when_norms_are_steady():
    params = list(small_cnn().parameters())
    awd = AdaptiveWeightDecay(params, 0.02)
    gen = torch.Generator().manual_seed(3)
    for _ in range(30):
        grads = fill_grads(params, gen)
        awd.apply()
    decay = [p.grad.double() - g.double() for p, g in zip(params, grads, strict=True)]
    assert norm64(decay) / norm64(grads) == pytest.approx(0.02, rel=1e-2)


@pytest.mark.parametrize("method", ["fixed", "adaptive"])
def test_grads_are_changed_in_place(method):
    params = list(small_cnn().parameters())
    fill_grads(params, torch.Generator().manual_seed(4))
    before = [(p.grad, p.grad.data_ptr()) for p in params]
    wd = FixedWeightDecay(params, 0.1) if method == "fixed" else AdaptiveWeightDecay(params, 0.1)
    snapshot = [p.grad.clone() for p in params]
    wd.apply()
    for p, (grad, ptr), old in zip(params, before, snapshot, strict=True):
        assert p.grad is grad and p.grad.data_ptr() == ptr
        if p.detach().abs().sum() > 0:  # BatchNorm biases start at zero: nothing to add
            assert not torch.equal(p.grad, old), "the decay was not added"


def test_params_without_grad_are_skipped():
    params = list(small_cnn().parameters())
    fill_grads(params[1:], torch.Generator().manual_seed(5))
    AdaptiveWeightDecay(params, 0.02).apply()
    FixedWeightDecay(params, 0.01).apply()
    assert params[0].grad is None


def test_host_read_counter_catches_reads():
    """The spy used below must see the reads it is meant to forbid (else those tests cannot fail)."""
    t = torch.ones(())
    with count_host_reads() as counts:
        t.item()
        if t:
            float(t)
        t.tolist()
    assert counts == {"item": 1, "__bool__": 1, "__float__": 1, "tolist": 1}
    assert torch.ones(()).item() == 1.0  # and the methods are restored afterwards


@pytest.mark.parametrize("method", ["fixed", "adaptive"])
def test_apply_makes_no_host_sync(method):
    params = list(small_cnn().parameters())
    wd = FixedWeightDecay(params, 5e-4) if method == "fixed" else AdaptiveWeightDecay(params, 0.02)
    gen = torch.Generator().manual_seed(6)
    for _ in range(3):
        fill_grads(params, gen)
        with count_host_reads() as counts:
            wd.apply()
        assert counts == {}, f"host reads during apply: {dict(counts)}"


def devices() -> list[str]:
    # "meta" tensors have no data at all: anything created on the CPU instead, or read on the
    # host, fails or shows up there. CUDA is checked too when present.
    return ["meta", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("method", ["fixed", "adaptive"])
def test_lambda_bar_is_a_0d_tensor_on_the_params_device(device, method):
    params = [nn.Parameter(torch.randn(4, 3, device=device)), nn.Parameter(torch.randn(3, device=device))]
    for p in params:
        p.grad = torch.randn_like(p)
    wd = FixedWeightDecay(params, 0.01) if method == "fixed" else AdaptiveWeightDecay(params, 0.02)
    for _ in range(2):
        lam_bar = wd.apply()
        assert isinstance(lam_bar, torch.Tensor)
        assert lam_bar.dim() == 0 and lam_bar.device.type == device
        assert wd.grad_norm.dim() == 0 and wd.grad_norm.device.type == device


def test_awd_state_dict_round_trip(tmp_path):
    params = list(small_cnn().parameters())
    awd = AdaptiveWeightDecay(params, 0.03)
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        fill_grads(params, gen)
        awd.apply()
    path = tmp_path / "awd.pt"
    torch.save(awd.state_dict(), path)
    saved_lam_bar = awd.lam_bar.clone()

    twin_params = [nn.Parameter(p.detach().clone()) for p in params]
    twin = AdaptiveWeightDecay(twin_params, 0.5, avg=0.7)  # different settings, overwritten by the state
    twin.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(twin.lam_bar, saved_lam_bar)
    assert (twin.lambda_awd, twin.avg) == (0.03, 0.1)

    grads = fill_grads(params, gen)
    for p, g in zip(twin_params, grads, strict=True):
        p.grad = g.clone()
    assert torch.equal(awd.apply(), twin.apply())
    for p, q in zip(params, twin_params, strict=True):
        assert torch.equal(p.grad, q.grad)


def test_awd_state_dict_is_a_snapshot():
    params = list(small_cnn().parameters())
    awd = AdaptiveWeightDecay(params, 0.03)
    fill_grads(params, torch.Generator().manual_seed(8))
    awd.apply()
    state = awd.state_dict()
    kept = state["lam_bar"].clone()
    fill_grads(params, torch.Generator().manual_seed(9), scale=10.0)
    awd.apply()
    assert torch.equal(state["lam_bar"], kept), "state_dict aliases the live λ̄"


def test_fixed_state_dict_round_trip():
    params = list(small_cnn().parameters())
    twin = FixedWeightDecay(params, 0.5)
    twin.load_state_dict(FixedWeightDecay(params, 5e-4).state_dict())
    assert twin.lam == 5e-4
    assert float(twin.lam_bar) == pytest.approx(5e-4)


def test_no_bn_bias_excludes_batchnorm_params_and_biases():
    model = small_cnn()
    decayed = {id(p) for p in decayed_parameters(model, "no_bn_bias")}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            excluded = isinstance(module, nn.BatchNorm2d) or name == "bias"
            assert (id(p) in decayed) != excluded, f"{type(module).__name__}.{name}"
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(decayed) == len(weights) == 4  # three convs and the head
    assert {id(p) for p in decayed_parameters(model, "all")} == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("kind", ["fixed", "adaptive"])
def test_trial_decays_the_configured_parameter_set(kind):
    cfg = small_trial_config(kind=kind, value=0.02, train={"decay": "no_bn_bias"})
    tr = build_trainer(cfg, "cpu")
    assert [id(p) for p in tr.arm.params] == \
        [id(p) for p in decayed_parameters(tr.model, "no_bn_bias")]
    bn = [p for m in tr.model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()]
    fill_grads(list(tr.model.parameters()), torch.Generator().manual_seed(10))
    before = [p.grad.clone() for p in bn]
    tr.arm.apply()
    assert all(torch.equal(p.grad, g) for p, g in zip(bn, before, strict=True))


def train_steps(model: nn.Module, opt: torch.optim.Optimizer, wd: FixedWeightDecay | None,
                batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    model.train()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if wd is not None:
            wd.apply()
        opt.step()


@pytest.mark.parametrize("foreach", [None, True])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("decay", ["all", "no_bn_bias"])
def test_fixed_wd_is_bit_identical_to_sgd_weight_decay(nesterov, foreach, decay):
    lam, lr = 5e-3, 0.1
    gen = torch.Generator().manual_seed(11)
    batches = [(torch.rand(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen))
               for _ in range(5)]
    reference = small_cnn(seed=3)
    ours = copy.deepcopy(reference)

    decayed = {id(p) for p in decayed_parameters(reference, decay)}
    groups = [{"params": [p for p in reference.parameters() if id(p) in decayed], "weight_decay": lam},
              {"params": [p for p in reference.parameters() if id(p) not in decayed], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    sgd_ref = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=nesterov, foreach=foreach)
    train_steps(reference, sgd_ref, None, batches)

    sgd = torch.optim.SGD(ours.parameters(), lr=lr, momentum=0.9, nesterov=nesterov, weight_decay=0.0,
                          foreach=foreach)
    train_steps(ours, sgd, FixedWeightDecay(decayed_parameters(ours, decay), lam), batches)

    for (name, a), b in zip(reference.state_dict().items(), ours.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs from SGD(weight_decay={lam})"
    assert not torch.equal(reference.state_dict()["1.head.weight"], small_cnn(seed=3).state_dict()[
        "1.head.weight"]), "the weights did not move"
