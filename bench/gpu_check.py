"""GPU check: the real CIFAR-10 PreAct ResNet-18 PGD-10 epoch, eager and compiled, and what a GPU study relies on.

On one GPU, on the path the studies run (uint8 data on the device, bf16 autocast, channels_last,
`trials.train.train_epoch` on a real trial), wall clock after synchronising the device:
1. a 45,000-image epoch at batch 128 (the last batch the ragged 72 of a real CIFAR-10 epoch), PGD-10 at
   ε 8/255, eager then `torch.compile`d: compile seconds (first epoch − second), recompiles in the second
   epoch (there must be none), MFU = images/s × forward FLOPs per image × (2K+3) ÷ the device's dense bf16
   peak, looked up by the exact device name (`--peak-tflops` for others);
2. one step in bf16 and in fp32 from the same weights: the loss's relative difference, the gradients' cosine;
3. evaluation images/s: per-epoch (clean + PGD-10, bf16) and final (fp32);
4. 1, 2 and 4 eager trials packed on the GPU through Ray Tune (`resources.gpu` 1, 0.5, 0.25): images/s in
   all and each worker's peak memory.

Every wait on another process has a timeout. Without CUDA every figure is SKIP; `--dry-run` runs the same
code paths on the CPU at tiny shapes (`aot_eager` backend, fractional CPUs; `tests/bench/test_gpu_check.py`
runs it), `--quick` a short epoch on the GPU.

Why: GPU time per trial is the real workload. The measured MFU replaces the assumed one in
`bench.gpu_hours` and `decaylab validate --estimate --mfu`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# Ray Tune's console output: the classic reporter, which verbose=0 silences
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench.common import CIFAR_INFO, QUICK, closing, forward_flops, synthetic_data, trial
from trials import data as data_mod
from trials.config import TrialConfig, resolved_eval_attack, resolved_train_attack
from trials.evaluation import correct_counts
from trials.models import build_model
from trials.train import Trainer, arm_hooks, autocast_for, build_trainer, train_epoch, train_step

REPO = Path(__file__).resolve().parents[1]
# dense (not 2:4 sparse) bf16 tensor-core peaks in TFLOP/s, by the exact name CUDA reports
PEAK_BF16_TFLOPS = {
    "NVIDIA H100 80GB HBM3": 989.4,
    "NVIDIA H100 PCIe": 756.5,
    "NVIDIA H100 NVL": 835.5,
    "NVIDIA H200": 989.4,
    "NVIDIA H200 NVL": 835.5,
    "NVIDIA GH200 480GB": 989.4,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
    "NVIDIA A100 80GB PCIe": 312.0,
    "NVIDIA A100-PCIE-40GB": 312.0,
    "NVIDIA L40S": 362.1,
    "NVIDIA L4": 121.0,
}
CLOSINGS = ("gpu_check", "gpu_compile_seconds", "gpu_recompiles", "gpu_bf16_grad_cosine", "gpu_eval_images_per_s",
            "gpu_packing_4_vs_1")


@dataclass(frozen=True)
class Plan:
    device: str
    arch: str
    precision: str  # "auto" is bf16 on CUDA; the dry run asks for bf16 on the CPU to exercise it
    train_images: int  # chosen so that the last batch is ragged
    batch: int
    steps: int  # PGD-K
    eval_images: int
    packed_images: int
    packed_epochs: int
    backend: str  # torch.compile backend
    timeout_s: float  # for every wait on other processes


GPU = Plan("cuda", "preact_resnet18", "auto", 45_000, 128, 10, 10_000, 20 * 128 + 72, 3, "inductor", 600.0)
GPU_QUICK = Plan("cuda", "preact_resnet18", "auto", 4 * 128 + 72, 128, 10, 1024, 2 * 128 + 72, 1, "inductor", 600.0)
DRY = Plan("cpu", "small_cnn", "bf16", 2 * 16 + 8, 16, 3, 64, 2 * 16 + 8, 1, "aot_eager", 180.0)


def config(plan: Plan, compiled: bool = False, precision: str | None = None) -> TrialConfig:
    return trial(arch=plan.arch, dataset="cifar10", batch_size=plan.batch, steps=plan.steps, eps=8 / 255,
                 step_size=2 / 255, lr=0.1, epochs=1000, compile_model=compiled,
                 precision=precision or plan.precision, channels_last=True)  # CUDA's default; the dry run too


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_epoch(tr) -> float:
    sync(tr.device.type)
    start = time.perf_counter()
    train_epoch(tr)  # ends with its one host read: the device has finished when it returns
    return time.perf_counter() - start


# ------------------------------------------------------------------------------ 1. the epoch


def epochs(plan: Plan, flops_per_image: float, peak: float | None) -> tuple[dict[str, float], Trainer]:
    """Eager and compiled epochs; the figures, and the compiled trial (whose weights the evaluation uses)."""
    from torch._dynamo.utils import counters

    data = synthetic_data(plan.train_images, device=plan.device)
    out: dict[str, float] = {}
    for compiled in (False, True):
        tr = build_trainer(config(plan, compiled), plan.device, data=data)
        if compiled:  # the trial compiles lazily, on its first step: the backend can still be chosen
            tr.step_model = torch.compile(tr.model, backend=plan.backend)
        frames = counters["frames"]["total"]
        first = timed_epoch(tr)
        compiled_graphs = counters["frames"]["total"] - frames
        second = timed_epoch(tr)
        recompiles = counters["frames"]["total"] - frames - compiled_graphs
        ips = plan.train_images / second
        mfu = ips * flops_per_image / peak if peak else math.nan
        name = "compiled" if compiled else "eager"
        memory = f", peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if plan.device == "cuda" else ""
        print(f"  {name:8s}: {ips:9,.0f} img/s, epoch {second:6.1f} s, MFU {mfu:.1%}{memory}", flush=True)
        if compiled:
            print(f"            first epoch {first:.1f} s: compile ≈ {first - second:.1f} s, {compiled_graphs} graphs; "
                  f"recompiles in the second epoch: {recompiles}", flush=True)
            out |= {"compile_s": first - second, "recompiles": recompiles, "mfu": mfu, "compiled_ips": ips}
        else:
            out |= {"eager_ips": ips, "eager_mfu": mfu}
    return out, tr


# ------------------------------------------------------------------------------ 2. bf16 vs fp32


def agreement(plan: Plan) -> tuple[float, float]:
    """(relative loss difference, gradient cosine) of one step in bf16 autocast vs fp32 from the same state."""
    cfg = config(plan, precision="fp32")
    data = synthetic_data(plan.batch, device=plan.device)
    base = build_trainer(cfg, plan.device, data=data)
    x, y = data_mod.to_float(data.train.x, base.channels_last), data.train.y
    results = {}
    for name, ctx in (("fp32", contextlib.nullcontext()), ("bf16", autocast_for("bf16", base.device))):
        model = copy.deepcopy(base.model).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the gradients are what is compared
        out = train_step(model, optimizer, arm_hooks(cfg, model), x, y, resolved_train_attack(cfg), 0.0,
                         generator=torch.Generator(plan.device).manual_seed(3), autocast=ctx)
        grads = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
        results[name] = (float(out.loss), grads)
    (l32, g32), (l16, g16) = results["fp32"], results["bf16"]
    return abs(l16 - l32) / abs(l32), float(torch.nn.functional.cosine_similarity(g16, g32, dim=0))


# ------------------------------------------------------------------------------ 3. evaluation


def evaluation(plan: Plan, tr: Trainer) -> dict[str, float]:
    """Images per second of the per-epoch evaluation (clean + PGD, autocast) and of the final one (fp32)."""
    split = synthetic_data(plan.eval_images, device=plan.device).train
    attack = resolved_eval_attack(tr.config)  # PGD-10 at ε 8/255, step 2.5ε/10 = 2/255
    out = {}
    model = tr.model.eval()
    fp32 = copy.deepcopy(tr.model).float().to(memory_format=torch.contiguous_format).eval()
    for name, net, ctx, cl in (("per-epoch (autocast)", model, tr.autocast, tr.channels_last),
                               ("final (fp32)", fp32, contextlib.nullcontext(), False)):
        kw = {"batch_size": tr.config.eval.batch_size, "autocast": ctx, "channels_last": cl,
              "generator": torch.Generator(plan.device).manual_seed(0)}
        correct_counts(net, split.take(tr.config.eval.batch_size), [None, attack], **kw)  # warm-up
        sync(plan.device)
        start = time.perf_counter()
        correct_counts(net, split, [None, attack], **kw).tolist()
        out[name] = len(split) / (time.perf_counter() - start)
        print(f"  {name:22s}: {out[name]:9,.0f} img/s (clean + PGD-10, batch {kw['batch_size']})", flush=True)
    return out


# ------------------------------------------------------------------------------ 4. packing through Ray


def packed_trial(params: dict) -> None:
    """A Ray Tune trainable: warm up, wait for the others, train, report images, span and peak memory."""
    import ray
    from ray import tune

    plan: Plan = params["plan"]
    torch.set_num_threads(max(1, int(params["threads"])))
    tr = build_trainer(config(plan), plan.device, data=synthetic_data(plan.packed_images, device=plan.device))
    train_epoch(tr)  # warm-up: allocator, cuDNN's algorithm choice
    barrier = ray.get_actor(params["barrier"])
    barrier.arrive.remote()
    deadline = time.monotonic() + plan.timeout_s
    while not ray.get(barrier.ready.remote(), timeout=plan.timeout_s):
        if time.monotonic() > deadline:
            raise TimeoutError("the other packed trials never arrived (one of them crashed?)")
        time.sleep(0.05)
    sync(plan.device)
    start = time.time()
    for _ in range(plan.packed_epochs):
        train_epoch(tr)
    end = time.time()
    memory = (torch.cuda.max_memory_allocated() if plan.device == "cuda"
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    tune.report({"images": plan.packed_images * plan.packed_epochs, "start": start, "end": end, "memory": memory})


def packing(plan: Plan) -> dict[int, float]:
    """Aggregate images/s of 1, 2 and 4 trials packed on one device through Ray Tune."""
    import ray
    from ray import tune

    @ray.remote(num_cpus=0)
    class Barrier:
        def __init__(self, parties: int):
            self.parties, self.arrived = parties, 0

        def arrive(self) -> None:
            self.arrived += 1

        def ready(self) -> bool:
            return self.arrived >= self.parties

    cpus = os.cpu_count() or 2
    ray.init(address="local", num_cpus=cpus, num_gpus=1 if plan.device == "cuda" else 0, include_dashboard=False,
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    out = {}
    storage = tempfile.TemporaryDirectory()
    try:
        for k in (1, 2, 4):
            barrier = Barrier.options(name=f"barrier-{k}").remote(k)
            # a fraction of the one GPU each (or, in the dry run, of one CPU)
            resources = {"cpu": max(1, cpus // 4), "gpu": 1 / k} if plan.device == "cuda" else {"cpu": 1 / k}
            tuner = tune.Tuner(
                tune.with_resources(packed_trial, resources),
                param_space={"plan": plan, "barrier": f"barrier-{k}", "threads": max(1, cpus // 4),
                             "i": tune.grid_search(list(range(k)))},
                tune_config=tune.TuneConfig(time_budget_s=2 * plan.timeout_s),
                run_config=tune.RunConfig(name=f"packing-{k}", storage_path=storage.name, verbose=0,
                                          failure_config=tune.FailureConfig(max_failures=0)),
            )
            grid = tuner.fit()
            if grid.errors or len(grid) != k or any("images" not in r.metrics for r in grid):
                raise RuntimeError(f"packing {k}: {grid.errors or 'a trial reported nothing'}")
            rows = [r.metrics for r in grid]
            out[k] = sum(r["images"] for r in rows) / (max(r["end"] for r in rows) - min(r["start"] for r in rows))
            unit = "GiB of GPU memory (max_memory_allocated)" if plan.device == "cuda" else "GiB peak RSS"
            print(f"  {k} trial(s), {resources}: {out[k]:9,.0f} img/s in all; per trial "
                  + ", ".join(f"{r['memory'] / 2**30:.2f}" for r in rows) + f" {unit}", flush=True)
            ray.kill(barrier)
    finally:
        ray.shutdown()
        storage.cleanup()
    return out


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same code paths on the CPU, tiny shapes")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of a device not in the table")
    parser.add_argument("--quick", action="store_true", help="a short epoch on the GPU (also BENCH_QUICK=1)")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure here (--dry-run runs the code paths on the CPU)")
        for name in CLOSINGS:
            print(f"{name}: skipped (no CUDA)")
        return
    plan = DRY if args.dry_run else GPU_QUICK if args.quick or QUICK else GPU
    started = time.perf_counter()
    name = torch.cuda.get_device_name(0) if plan.device == "cuda" else "CPU (dry run)"
    tflops = args.peak_tflops or PEAK_BF16_TFLOPS.get(name)
    peak = tflops * 1e12 if tflops else None
    flops_per_image = forward_flops(build_model(config(plan).model, CIFAR_INFO), torch.rand(1, 3, 32, 32))
    flops_per_image *= 2 * plan.steps + 3
    print(f"device: {name}; dense bf16 peak: {f'{tflops:g} TFLOP/s' if tflops else 'unknown (pass --peak-tflops)'}")
    print(f"1. epoch: {plan.arch}, {plan.train_images:,} images at batch {plan.batch} (last batch "
          f"{plan.train_images % plan.batch}), PGD-{plan.steps}, {plan.precision} precision, channels_last; "
          f"{flops_per_image / 1e9:.2f} GFLOP per training image (forward × {2 * plan.steps + 3})", flush=True)
    ep, trained = epochs(plan, flops_per_image, peak)
    loss_diff, cosine = agreement(plan)
    print(f"2. one step, bf16 autocast vs fp32: loss differs by {loss_diff:.2%}, gradient cosine {cosine:.4f}")
    print("3. evaluation:")
    ev = evaluation(plan, trained)
    print("4. packing through Ray Tune (eager trials):", flush=True)
    packed = packing(plan)
    print(f"done in {time.perf_counter() - started:.0f} s")
    closing("gpu_check", ep["mfu"], ".3f")
    closing("gpu_compile_seconds", ep["compile_s"], ".1f")
    closing("gpu_recompiles", ep["recompiles"], ".0f")
    closing("gpu_bf16_grad_cosine", cosine, ".4f")
    closing("gpu_eval_images_per_s", ev["per-epoch (autocast)"], ".0f")
    closing("gpu_packing_4_vs_1", packed[4] / packed[1], ".2f")


if __name__ == "__main__":
    main()
