"""Which memory layout each convolution runs faster in on a CPU, and what decaylab's choice per convolution saves.

With `train.channels_last` unset, decaylab runs each convolution on a CPU in the layout
`trials.models.conv_layout` picks from the shape of its input: channels_last, but NCHW for more than
128 input channels on maps under 16×16. This benchmark times, for every distinct convolution of three
networks, what one PGD step asks of it — a forward and the backward w.r.t. its input — in NCHW and in
channels_last (input and weight in the layout, one thread, rounds interleaved, medians of the CPU
time), and prints the pick beside the faster of the two:

- PreAct ResNet-18 on CIFAR-10-shaped inputs, batch 16 (trainer_vs_reference's setting);
- WRN-28-10 on the same inputs, batch 16;
- the small CNN on 8×8 digits, batch 32 (the default study's network).

For each network, the convolutions' attack-step time summed over the network (each distinct
convolution times how often it occurs) in NCHW, in channels_last and in the picked layouts. The
closing figure is PreAct-18's NCHW ÷ picked: the part of decaylab's per-convolution layouts that the
convolutions alone explain (the BatchNorms, ReLUs and additions between them follow the layout too).

    .venv/bin/python -m bench.conv_layouts      (no target; about 11 seconds on 2 CPU cores)
"""

from __future__ import annotations

import statistics
from collections import Counter

import torch
import torch.nn.functional as F

from bench.common import CIFAR_INFO, closing, interleaved, machine_line, one_thread
from trials import data as data_mod
from trials.config import ModelConfig
from trials.models import build_model, conv_input_shapes, conv_layout

NETWORKS = {  # name: (model config, dataset info, batch size)
    "PreAct-18": (ModelConfig(arch="preact_resnet18"), CIFAR_INFO, 16),
    "WRN-28-10": (ModelConfig(arch="wide_resnet", depth=28, width=10), CIFAR_INFO, 16),
    "small_cnn": (ModelConfig(arch="small_cnn"), data_mod.DATASETS["digits"][0], 32),
}
ROUNDS = 6
LAYOUTS = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}


def distinct_convolutions(cfg: ModelConfig, info: data_mod.DatasetInfo) -> Counter:
    """{(in, out, kernel, stride, padding, (C, H, W) input): how many convolutions of the network have it}."""
    shapes = conv_input_shapes(build_model(cfg, info), (info.channels, info.size, info.size))
    return Counter((c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0], tuple(shape))
                   for c, shape in shapes.items())


def attack_step(key: tuple, batch: int, layout: torch.memory_format):
    """A forward and the backward w.r.t. the input of one convolution, input and weight in `layout`."""
    cin, cout, k, stride, padding, shape = key
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(cout, cin, k, k, generator=gen).contiguous(memory_format=layout)
    x = torch.randn(batch, *shape, generator=gen).contiguous(memory_format=layout).requires_grad_()
    grad_out = torch.ones_like(F.conv2d(x.detach(), weight, stride=stride, padding=padding))

    def run() -> None:
        out = F.conv2d(x, weight, stride=stride, padding=padding)
        torch.autograd.grad(out, x, grad_out)

    return run


def measure(name: str, cfg: ModelConfig, info: data_mod.DatasetInfo, batch: int) -> float:
    convs = distinct_convolutions(cfg, info)
    print(f"{name}: {sum(convs.values())} convolutions, {len(convs)} distinct, batch {batch} "
          f"(ms per forward + input backward, median of {ROUNDS} rounds)")
    print(f"  {'convolution':34s} {'count':>5s} {'NCHW':>8s} {'ch_last':>8s} {'NCHW÷cl':>8s}  pick")
    totals = dict.fromkeys((*LAYOUTS, "picked"), 0.0)
    for key, count in convs.items():
        cin, cout, k, stride, _, (_, h, w) = key
        fns = {layout: attack_step(key, batch, fmt) for layout, fmt in LAYOUTS.items()}
        times = interleaved(fns, repeats=ROUNDS)
        ms = {layout: 1e3 * statistics.median(t.cpu for t in times[layout]) for layout in LAYOUTS}
        pick = "NCHW" if conv_layout(cin, h, w) == torch.contiguous_format else "channels_last"
        faster = min(ms, key=ms.get)
        for layout in LAYOUTS:
            totals[layout] += count * ms[layout]
        totals["picked"] += count * ms[pick]
        label = f"{cin:>4d}→{cout:<4d} {k}×{k}/{stride} on {h}×{w}"
        note = "" if pick == faster else f"  (faster: {faster})"
        print(f"  {label:34s} {count:5d} {ms['NCHW']:8.2f} {ms['channels_last']:8.2f} "
              f"{ms['NCHW'] / ms['channels_last']:8.2f}  {pick}{note}")
    print(f"  summed over the network: NCHW {totals['NCHW']:.1f} ms, channels_last {totals['channels_last']:.1f} ms, "
          f"picked {totals['picked']:.1f} ms; NCHW ÷ picked {totals['NCHW'] / totals['picked']:.3f}, "
          f"channels_last ÷ picked {totals['channels_last'] / totals['picked']:.3f}")
    return totals["NCHW"] / totals["picked"]


def main() -> None:
    one_thread()
    print(machine_line())
    ratios = {name: measure(name, *setting) for name, setting in NETWORKS.items()}
    print("convolutions' attack-step time, NCHW ÷ decaylab's picks: "
          + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    closing("conv_layouts", ratios["PreAct-18"])


if __name__ == "__main__":
    main()
