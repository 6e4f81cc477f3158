"""What a study costs before it runs: `decaylab validate --estimate`, and the first line of every sweep.

Counts: trials, epochs and forward-equivalents (`trials.cost`). Expected wall time:

* **CPU** (a study with `resources.gpu: 0`, or a machine without a GPU): seconds per
  forward-equivalent *measured here* by `decaylab validate --estimate`, from a few real training steps
  of the study's first trial (its model, batch size, attack and arm, on random data of the dataset's
  shape, with the trial's thread count) and one evaluation batch; times each trial's
  forward-equivalents, spread over the trials that run at once (`resources.cpu` per trial,
  `max_concurrent`), plus the start-up of the sweep and of each trial (assumed constants). The
  measurement is kept in a cache (`$XDG_CACHE_HOME/decaylab/speed.json`), which a sweep's first line
  reads: a sweep never times training itself.
* **GPU** (`resources.gpu > 0`): measured the same way on this machine's GPU when it has one; else
  the FLOP model: forward FLOPs of the model (torch's counter) × forward-equivalents over an *assumed*
  model FLOP utilisation (`--mfu`, default 0.36, airbench's) of an H100's dense bf16 peak, in GPU-hours.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from orchestrator.study.checks import dataset_sizes
from orchestrator.study.plan import first_trial, planned_trials, threads, trial_config
from orchestrator.study.schema import Study
from trials import cost
from trials.config import TrialConfig, resolved_eval_attack
from trials.datasets import dataset_info
from trials.evaluation import correct_counts
from trials.train import build_trainer, train_epoch

# Assumed, and erring long: a sweep's own start and stop (imports, a local Ray cluster), and a trial's set-up,
# records and hand-over to the next one in its slot (`bench.sweep_overhead` measures both on a machine)
SWEEP_START_S = 12.0
TRIAL_START_S = 3.0
PEAK_TFLOPS = 989.0  # H100 SXM, dense bf16
DEFAULT_MFU = 0.36  # airbench's efficiency on an A100/H100
MEASURE_S = 0.5  # time spent measuring training, and again evaluation


@dataclass(frozen=True)
class Estimate:
    trials: int
    epochs: int  # per trial
    forward: cost.ForwardEquivalents  # per trial
    seconds: float | None  # expected wall time of the whole study (GPU: on one GPU); None: not measured here
    how: str  # what the time rests on, in words
    gpu_hours: float | None = None

    def text(self) -> str:
        fe = self.forward.total * self.trials
        time_text = (f"{self.gpu_hours:,.1f} GPU-hours" if self.gpu_hours is not None
                     else "time not known yet" if self.seconds is None else f"about {clock(self.seconds)}")
        return (f"estimate: {self.trials} trials × {self.epochs} epochs, {fe:.3g} forward-equivalents "
                f"({self.forward.train / self.forward.total:.0%} training); {time_text} ({self.how})")


def clock(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def representative(study: Study) -> TrialConfig:
    """A trial that stands for all: they share model, data, training and evaluation settings (an arm's own
    hyperparameters barely change the cost; an Optuna range stands in with its low end)."""
    if study.search.kind == "grid":
        return first_trial(study)  # not the whole grid: a study may hold a million trials
    name, arm = next(iter(study.arms.items()))
    params = {h: (getattr(arm, h) or (study.search.space[f"{name}.{arm.study_key(h)}"].low,))[0]
              for h in arm.hyperparameters()}
    return trial_config(study, name, params, study.lr[0], study.seeds[0], study.data.label_noise[0])


def splits(cfg: TrialConfig) -> cost.Splits:
    sizes = dataset_sizes(cfg.data, check_files=True)
    pool, test = (sizes[0], sizes[1]) if sizes else cost.TINY_IMAGENET[:2]
    return cost.split_sizes(cfg, pool, test)


def info_for(cfg: TrialConfig):
    sizes = dataset_sizes(cfg.data, check_files=True)
    return dataset_info(cfg.data.dataset, cfg.data.image_size, sizes[2] if sizes else cost.TINY_IMAGENET[2])


def estimate(study: Study, trials: int | None = None, cpus: float | None = None, device: str | None = None,
             mfu: float | None = None, measure: bool = True) -> Estimate:
    """The estimate of `trials` trials of `study` (default: all of them) on `device` (cpu|cuda; default: a
    GPU when the study asks for one) with `cpus` CPUs (default: this machine's). `measure` times training
    here (and keeps the figures in the cache); otherwise the cached figures are used, when there are any."""
    cfg, n = representative(study), trials if trials is not None else planned_trials(study)
    fe = cost.forward_equivalents(cfg, splits(cfg))
    device = device or ("cuda" if study.resources.gpu > 0 else "cpu")
    speed = None
    if device == "cpu" or torch.cuda.is_available():  # timed here, now or by an earlier `validate --estimate`
        key = speed_key(cfg, device, threads(study))
        speed = measure_speed(cfg, device, threads(study), key) if measure else cached_speed(key)
    if speed is None:
        if device == "cuda":
            return flop_estimate(study, cfg, n, fe, mfu or DEFAULT_MFU)
        return Estimate(n, cfg.train.epochs, fe, None, "`decaylab validate --estimate` times this study's training "
                        "on this machine once; sweeps then estimate from it")
    train_s, eval_s = speed
    per_trial = TRIAL_START_S + fe.train * train_s + (fe.evaluation + fe.final) * eval_s
    slots = concurrent_trials(study, cpus or os.cpu_count() or 1) if device == "cpu" else 1
    where = "this machine's CPU" if device == "cpu" else torch.cuda.get_device_name()
    return Estimate(n, cfg.train.epochs, fe, SWEEP_START_S + math.ceil(n / max(slots, 1)) * per_trial,
                    f"measured on {where}: {train_s * 1e6:.3g} µs per training and {eval_s * 1e6:.3g} µs per "
                    f"evaluation forward-equivalent; {slots} trial(s) at once")


def cache_path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "decaylab" / "speed.json"


def speed_key(cfg: TrialConfig, device: str, n_threads: int) -> str:
    """What the time per forward-equivalent depends on: the machine, the model and its input, the batch, the
    attacks and the precision (not the arm or lr)."""
    where = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())
    tr, ev = cfg.attack.train, cfg.attack.eval
    return "|".join(map(str, (device, where, n_threads, cfg.model.arch, cfg.model.depth, cfg.model.width,
                              cfg.data.dataset, cfg.data.image_size, cfg.train.batch_size, cfg.train.precision,
                              tr.kind, tr.steps, tr.objective, ev.kind, ev.steps, cfg.eval.batch_size)))


def cached_speed(key: str) -> tuple[float, float] | None:
    try:
        entry = json.loads(cache_path().read_text()).get(key)
        return (float(entry["train_s"]), float(entry["eval_s"])) if isinstance(entry, dict) else None
    except (OSError, ValueError, KeyError, TypeError):  # no cache yet, or one this version cannot read
        return None


def measure_speed(cfg: TrialConfig, device: str, n_threads: int, key: str) -> tuple[float, float]:
    speed = seconds_per_forward(cfg, device, n_threads)
    path = cache_path()
    try:
        cache = json.loads(path.read_text()) if path.is_file() else {}
        cache = cache if isinstance(cache, dict) else {}
        cache[key] = {"train_s": speed[0], "eval_s": speed[1]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(path)
    except (OSError, ValueError):  # a cache that cannot be written costs the next sweep its estimate, nothing else
        pass
    return speed


def flop_estimate(study: Study, cfg: TrialConfig, n: int, fe: cost.ForwardEquivalents, mfu: float) -> Estimate:
    info = info_for(cfg)
    from trials.models import build_model

    model = build_model(cfg.model, info).eval()
    gflop = cost.forward_flops(model, torch.rand(1, info.channels, info.size, info.size)) / 1e9
    hours = n * fe.total * gflop * 1e9 / (mfu * PEAK_TFLOPS * 1e12) / 3600
    return Estimate(n, cfg.train.epochs, fe, hours * 3600, f"FLOP model: {gflop:.3g} GFLOP per forward pass at an "
                    f"assumed {mfu:.0%} MFU of an H100's {PEAK_TFLOPS:g} TFLOP/s; "
                    f"{1 / study.resources.gpu:g} trial(s) per GPU", gpu_hours=hours)


def concurrent_trials(study: Study, cpus: float) -> int:
    slots = max(1, math.floor(cpus / study.resources.cpu))
    return min(slots, study.resources.max_concurrent or slots)


def seconds_per_forward(cfg: TrialConfig, device: str, n_threads: int) -> tuple[float, float]:
    """(training, evaluation) seconds per forward-equivalent, from real steps of `cfg` here."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        info = info_for(cfg)
        batch = cfg.train.batch_size
        data = cost.synthetic_data(2 * batch, info, device=device)
        tr = build_trainer(cfg, device, data=data)
        train = _timed(lambda: train_epoch(tr)) / (len(data.train) * cost.per_training_image(cfg))
        tr.model.eval()
        split = data.train.take(min(cfg.eval.batch_size, len(data.train)))
        attack = resolved_eval_attack(cfg)
        attacks = [None, attack] if attack.kind != "none" else [None]
        evaluation = _timed(lambda: correct_counts(tr.model, split, attacks, batch_size=cfg.eval.batch_size).tolist()) \
            / (len(split) * cost.per_evaluated_image(cfg))
        return train, evaluation
    finally:
        torch.set_num_threads(previous)


def _timed(fn) -> float:
    """Seconds per call of `fn` after one call to warm up, over calls for at least MEASURE_S."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < MEASURE_S:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls
