"""CPU seconds of the GPU studies' training through the real epoch loop (GPU-hour estimates use FLOPs: gpu_hours).

Two measurements, each with the settings of its study file (PGD-7 training at ε 8/255, step 2/255,
SGD, cosine lr, fixed weight decay 5e-4, fp32 on CPU), on synthetic CIFAR-shaped uint8 images
(3×32×32, 10 classes) that replace the dataset files:

- `preact18_epoch_512_cpu_s`: one training epoch of studies/cifar10_preact18.yaml on 512 images
  (batch 128 → 4 steps), evaluation excluded;
- `wrn28_10_step_b32_cpu_s`: one training step of studies/cifar10_wrn28_10.yaml at batch 32
  (7 PGD steps on the batch, then the weight update).

Times are wall-clock seconds with `torch.set_num_threads(THREADS)` (2 by default); the process CPU
seconds are printed next to them. A first, untimed pass on a small batch loads the kernels. Run
from the repository root:

    .venv/bin/python -m bench.epoch_cost [--threads 2] [--images 512] [--repeats 1] [--skip-wrn] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from orchestrator.study.load import load_study
from orchestrator.study.plan import expand_grid
from trials import data as data_mod
from trials.config import TrialConfig
from trials.train import build_trainer, train_epoch

REPO = Path(__file__).resolve().parents[1]
PREACT_STUDY = REPO / "studies" / "cifar10_preact18.yaml"
WRN_STUDY = REPO / "studies" / "cifar10_wrn28_10.yaml"
CLASSES = 10


def study_trial(path: Path, *sets: str) -> TrialConfig:
    """The first grid trial of a study (a fixed-λ arm), without its dataset files."""
    study = load_study(path, list(sets), check_data=False)  # the dataset's files are not needed: data is synthetic
    return expand_grid(study)[0]


def synthetic(n: int, seed: int = 0) -> data_mod.TrialData:
    """n random CIFAR-shaped uint8 images with balanced labels, as `trials.data.load` returns them."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
    y = torch.arange(n) % CLASSES
    info = data_mod.DATASETS["cifar10"][0]
    split = data_mod.Split(x, y)
    return data_mod.TrialData(info=info, train=split, val=split.take(CLASSES), test=split.take(CLASSES),
                              noisy=torch.zeros(n, dtype=torch.bool), clean_train_labels=y,
                              label_noise_actual=0.0)


def time_training(cfg: TrialConfig, n: int) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, optimiser steps) of one training epoch on n images."""
    with mock.patch.object(data_mod, "load", lambda *_args, **_kw: synthetic(n)):
        tr = build_trainer(cfg, "cpu")
    wall, cpu = time.perf_counter(), time.process_time()
    train_epoch(tr)
    return time.perf_counter() - wall, time.process_time() - cpu, tr.steps_per_epoch


def warm_up(cfg: TrialConfig) -> None:
    """One untimed step on 8 images: library loading and first-call costs stay out of the numbers."""
    time_training(cfg.model_copy(update={"train": cfg.train.model_copy(update={"batch_size": 8})}), 8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--images", type=int, default=512, help="images in the PreAct-18 epoch (default 512)")
    parser.add_argument("--repeats", type=int, default=1, help="repeat each measurement; the minimum is printed")
    parser.add_argument("--skip-wrn", action="store_true", help="only the PreAct-18 epoch")
    parser.add_argument("--quick", action="store_true", help="8 images, no WRN: a check that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.skip_wrn = 8, True
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    preact = study_trial(PREACT_STUDY)
    attack = preact.attack.train
    print(f"preact18: {preact.model.arch}, batch {preact.train.batch_size}, PGD-{attack.steps} "
          f"ε {attack.eps * 255:.0f}/255 step {attack.step_size * 255:.0f}/255, {args.images} images")
    warm_up(preact)
    runs = [time_training(preact, args.images) for _ in range(args.repeats)]
    wall, cpu, steps = min(runs)
    print(f"preact18_epoch_{args.images}_cpu_s: {wall:.1f}")
    print(f"preact18_epoch_{args.images}_process_cpu_s: {cpu:.1f}  ({steps} steps)")
    preact_per_image = wall / args.images
    print(f"preact18_train_ms_per_image_cpu: {1000 * preact_per_image:.0f}")

    if args.skip_wrn:
        return
    wrn = study_trial(WRN_STUDY, "train.batch_size=32")
    print(f"wrn28_10: {wrn.model.arch}-{wrn.model.depth}-{wrn.model.width}, batch {wrn.train.batch_size}, "
          f"PGD-{wrn.attack.train.steps}")
    warm_up(wrn)
    runs = [time_training(wrn, wrn.train.batch_size) for _ in range(args.repeats)]
    wall, cpu, steps = min(runs)
    assert steps == 1, steps
    print(f"wrn28_10_step_b32_cpu_s: {wall:.1f}")
    print(f"wrn28_10_step_b32_process_cpu_s: {cpu:.1f}")
    wrn_per_image = wall / wrn.train.batch_size
    print(f"wrn28_10_train_ms_per_image_cpu: {1000 * wrn_per_image:.0f}")
    # the FLOP ratio of the two networks is 10.49 / 1.11 = 9.5; CPU efficiency differs by shape
    print(f"wrn28_10_over_preact18_per_image: {wrn_per_image / preact_per_image:.1f}")


if __name__ == "__main__":
    main()
