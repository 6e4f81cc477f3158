"""GPU throughput of PGD-10 adversarial training: images/s, MFU, and trials packed on one GPU.

The real training loop (`trials.train.train_epoch` on a trial built by `build_trainer`) with the
GPU path of DESIGN.md §7: data as uint8 on the device, bf16 autocast, channels_last and
`torch.compile`, batch 128, PGD-10 (ε 8/255, step 2/255) as in Rice et al. For PreAct ResNet-18
and WRN-28-10 on random 32×32 images:

- images/s of one trial, and MFU = achieved FLOP/s ÷ the device's dense bf16 peak, where the
  FLOPs per training image are the forward FLOPs counted by `FlopCounterMode` × (2K+3);
- PreAct ResNet-18 only: aggregate images/s of 1, 2 and 4 trials packed on the GPU, each in its
  own process (as Ray's fractional GPUs run them), timed over the span in which all of them
  train (a barrier after compiling). WRN-28-10 at batch 128 already keeps the GPU busy alone.

Skips (closing line `gpu_throughput: skipped (no CUDA)`) where CUDA is absent.

    .venv/bin/python -m bench.gpu_throughput      (reference: ~36% MFU, airbench's efficiency)
"""

from __future__ import annotations

import time

import torch

from bench.common import CIFAR_INFO, forward_flops, synthetic_data, trial
from trials.config import ModelConfig, TrialConfig
from trials.models import build_model
from trials.train import build_trainer, train_epoch

# dense (not 2:4 sparse) bf16 tensor-core peaks, TFLOP/s; the first name contained in the device's name wins
PEAK_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
                    ("L4", 121.0))
K, BATCH = 10, 128
STEPS_PER_EPOCH = 20  # synthetic "epoch": 20 batches of 128
TIMED_EPOCHS = {"preact_resnet18": 10, "wide_resnet": 3}
PACKED = (1, 2, 4)


def peak_flops(name: str) -> float | None:
    return next((tflops * 1e12 for key, tflops in PEAK_BF16_TFLOPS if key in name), None)


def config(arch: str) -> TrialConfig:
    return trial(arch=arch, dataset="cifar10", batch_size=BATCH, steps=K, eps=8 / 255, step_size=2 / 255,
                 lr=0.1, epochs=1000, compile_model=True)


def run_trial_loop(arch: str, epochs: int, barrier=None, device: str = "cuda") -> tuple[int, float, float]:
    """Compile and warm up, wait for the others, then train: (images, start, end) on the monotonic clock."""
    cfg = config(arch)
    tr = build_trainer(cfg, device, data=synthetic_data(STEPS_PER_EPOCH * BATCH, device=device))
    for _ in range(2):  # the first epoch compiles the attack and the training graphs; the second settles
        train_epoch(tr)
    if barrier is not None:
        barrier.wait()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.monotonic()
    for _ in range(epochs):
        train_epoch(tr)  # ends with its one host read, so the GPU has finished when it returns
    end = time.monotonic()
    return epochs * len(tr.data.train), start, end


def _packed_worker(arch: str, epochs: int, barrier, results, device: str) -> None:
    results.put(run_trial_loop(arch, epochs, barrier, device))


def packed_throughput(arch: str, trials: int, epochs: int, device: str = "cuda") -> float:
    """Aggregate images/s of `trials` processes training at once on the one GPU."""
    ctx = torch.multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    barrier, results = ctx.Barrier(trials), ctx.Queue()
    procs = [ctx.Process(target=_packed_worker, args=(arch, epochs, barrier, results, device))
             for _ in range(trials)]
    for p in procs:
        p.start()
    done = [results.get(timeout=1200) for _ in procs]  # a crashed worker must not hang the run
    for p in procs:
        p.join()
    images = sum(d[0] for d in done)
    return images / (max(d[2] for d in done) - min(d[1] for d in done))


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure here")
        print("gpu_throughput: skipped (no CUDA)")
        return
    name = torch.cuda.get_device_name(0)
    peak = peak_flops(name)
    print(f"device: {name}; dense bf16 peak {peak / 1e12:.0f} TFLOP/s" if peak else
          f"device: {name}; bf16 peak unknown (add it to PEAK_BF16_TFLOPS): no MFU")
    mfu = {}
    for arch, epochs in TIMED_EPOCHS.items():
        flops_per_image = forward_flops(build_model(ModelConfig(arch=arch), CIFAR_INFO), torch.rand(1, 3, 32, 32))
        flops_per_image *= 2 * K + 3
        images, start, end = run_trial_loop(arch, epochs)
        ips = images / (end - start)
        mfu[arch] = ips * flops_per_image / peak if peak else float("nan")
        print(f"{arch}: batch {BATCH}, PGD-{K}, bf16 + channels_last + compile: {ips:,.0f} img/s, "
              f"{flops_per_image / 1e9:.1f} GFLOP per image (forward × {2 * K + 3}), MFU {mfu[arch]:.1%}", flush=True)
    arch = "preact_resnet18"
    for trials in PACKED:
        ips = packed_throughput(arch, trials, TIMED_EPOCHS[arch])
        print(f"{arch}, {trials} trial(s) packed on the GPU: {ips:,.0f} img/s in all", flush=True)
    print(f"gpu_throughput: {mfu[arch]:.3f} MFU {arch} (wide_resnet {mfu['wide_resnet']:.3f})")


if __name__ == "__main__":
    main()
