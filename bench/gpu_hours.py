"""GPU-hour estimates of the paper studies, from the models' FLOPs: an estimate, not a measurement.

For every study file that trains a ResNet (the paper reproductions), the FLOPs of one trial are
counted from its own settings:

- training: epochs × training images × (2K+3) forward-equivalents (PGD-K, attack gradient only
  w.r.t. the input) × the model's forward FLOPs per image;
- per-epoch evaluation (every `eval.every` epochs): val and test images × (2K'+2) for clean +
  PGD-K' accuracy, training images × 1 for `train_clean_acc`;
- final evaluation of the best and last weights: per sparsity clean (1) + FGSM (3) + PGD-K' (2K'+1)
  on the final examples, and AutoAttack at sparsity 0 counted as cost.AA_FORWARD_EQUIVALENTS per image
  (an assumption: the standard version spends most of its budget on the points that stay robust).

Forward FLOPs are counted by `torch.utils.flop_counter` on the study's model at its input size
(PreAct ResNet-18 on 32×32: 1.11 GFLOP, WRN-28-10: 10.49, as published). GPU-hours are the
FLOPs over `--mfu` × the device's dense bf16 peak (`--peak-tflops`, H100 SXM 989 by default);
the default MFU 0.36 is airbench's efficiency (94% CIFAR-10 in 2.59 s on an A100) and the
conservative column assumes 0.15. Replace them with the MFU `bench.gpu_check` measures on the actual GPU:

    .venv/bin/python -m bench.gpu_hours [--mfu 0.36] [--conservative-mfu 0.15] [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from orchestrator.study.load import parse_yaml, study_from_dict
from orchestrator.study.plan import expand_grid
from trials import cost
from trials import data as data_mod
from trials.config import TrialConfig
from trials.models import build_model

REPO = Path(__file__).resolve().parents[1]
# published split sizes (train, test) of the datasets the paper studies use; image_folder: Tiny ImageNet
SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000), "svhn": (73_257, 26_032),
         "fashion_mnist": (60_000, 10_000), "mnist": (60_000, 10_000), "image_folder": (100_000, 10_000)}
CLASSES = {"image_folder": 200}  # Tiny ImageNet; the others come from the registry


def info_for(cfg: TrialConfig) -> data_mod.DatasetInfo:
    info = data_mod.DATASETS[cfg.data.dataset][0]
    if cfg.data.dataset == "image_folder":
        size = cfg.data.image_size
        info = data_mod.DatasetInfo(info.name, 3, size, CLASSES["image_folder"], info.mean, info.std, info.pad, True)
    return info


def trial_flops(cfg: TrialConfig, gflop: float) -> float:
    """FLOPs of one trial: its forward-equivalents (`trials.cost`, the model `decaylab validate --estimate`
    uses) × the model's forward GFLOP."""
    train_full, test_full = SIZES[cfg.data.dataset]
    return cost.forward_equivalents(cfg, cost.split_sizes(cfg, train_full, test_full)).total * gflop * 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mfu", type=float, default=0.36, help="model FLOP utilisation (default 0.36, airbench)")
    parser.add_argument("--conservative-mfu", type=float, default=0.15, help="the second column (default 0.15)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (default 989, H100 SXM)")
    args = parser.parse_args(argv)
    print(f"Estimate: FLOPs counted per study, at {args.mfu:.0%} (and {args.conservative_mfu:.0%}) of a "
          f"{args.peak_tflops:g} TFLOP/s bf16 peak. Not measured on a GPU.\n")
    print("| study | trials | model, input | forward GFLOP/image | PFLOP/trial | GPU-h/trial "
          f"| GPU-h total at {args.mfu:.0%} MFU | at {args.conservative_mfu:.0%} MFU |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for path in sorted((REPO / "studies").glob("*.yaml")):
        study = study_from_dict(parse_yaml(path.read_text(), str(path)), str(path), check_data=False)
        if study.model.arch == "small_cnn":
            continue
        trials = expand_grid(study)
        cfg = trials[0]
        info = info_for(cfg)
        model = build_model(cfg.model, info).eval()
        gflop = cost.forward_flops(model, torch.rand(1, info.channels, info.size, info.size)) / 1e9
        flops = trial_flops(cfg, gflop)
        hours = [flops / (mfu * args.peak_tflops * 1e12) / 3600 for mfu in (args.mfu, args.conservative_mfu)]
        arch = cfg.model.arch if cfg.model.arch != "wide_resnet" else f"wrn-{cfg.model.depth}-{cfg.model.width}"
        print(f"| `studies/{path.name}` | {len(trials)} | {arch}, {info.channels}×{info.size}×{info.size} "
              f"| {gflop:.2f} | {flops / 1e15:.0f} | {hours[0]:.2f} | {hours[0] * len(trials):,.0f} "
              f"| {hours[1] * len(trials):,.0f} |")


if __name__ == "__main__":
    main()
