"""The trials of a study: grid expansion, the one home of trial counts, and each trial's config."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from orchestrator.study.schema import Study
from trials import arms
from trials.config import MAX_SEED, SHARED_SECTIONS, DataConfig, GridPoint, TrialConfig


def shared_sections(study: Study) -> dict[str, Any]:
    """The sections every trial of `study` shares, as trial-config objects."""
    data = DataConfig.model_construct(**{k: getattr(study.data, k) for k in DataConfig.model_fields})
    return {"data": data, **{k: getattr(study, k) for k in SHARED_SECTIONS if k != "data"}}


def trial_config(study: Study, method: str, params: dict[str, Any], lr: float, seed: int, noise: float,
                 stage: str = "tune") -> TrialConfig:
    grid = study.arms[method]
    point = GridPoint(arm=method, kind=grid.kind, params=params, lr=lr, seed=seed, label_noise=noise, stage=stage,
                      series=grid.series(params, seed))
    sections = shared_sections(study)
    if stage == "confirm" and study.confirm is not None and study.confirm.vary_split:
        sections["data"] = sections["data"].model_copy(update={"split_seed": split_seed(study, seed)})
    return TrialConfig.model_construct(study=study.name, point=point, **sections)


def split_seed(study: Study, seed: int) -> int:
    """The data split of confirmation seed `seed` when `confirm.vary_split`: its own, derived from the study's
    `data.split_seed` and the seed (every arm's trial of that seed shares it, so pairs stay paired)."""
    return (study.data.split_seed * 1_000_003 + seed + 1) % MAX_SEED


def confirmation_seeds(study: Study) -> tuple[int, ...]:
    """The confirmation stage's seeds: `confirm.seeds` as listed, or that many after the largest tuning seed."""
    if study.confirm is None:
        return ()
    seeds = study.confirm.seeds
    if isinstance(seeds, int):
        start = max(study.seeds) + 1
        return tuple(range(start, start + seeds))
    return tuple(seeds)


def expand_grid(study: Study) -> list[TrialConfig]:
    """Every arm × its own grid × label_noise × lr × seeds, in a stable order. Grids never cross arms."""
    return [cfg for entry in grid_entries(study) for cfg in entry.members]


def planned_count_text(study: Study) -> str:
    """The trials a study plans, spelled out: '48 trials = 4 settings [...] × 4 lr × 3 seeds, 20 epochs each'."""
    def axes(arm: arms.ArmGrid) -> str:  # a hyperparameter left at its one default value is not an axis
        return " × ".join(f"{len(getattr(arm, h) or ())} {arm.study_key(h)}" for h in arm.hyperparameters()
                          if not (h in arm.ID_DEFAULTS and getattr(arm, h) == (arm.ID_DEFAULTS[h],)))

    def count(n: int, noun: str) -> str:
        return f"{n} {noun}{'' if n == 1 else 's'}"

    parts = [f"{name} ({arm.kind}: {axes(arm)} = {count(arm_settings(arm), 'setting')})"
             for name, arm in study.arms.items()]
    seeds = confirmation_seeds(study)
    levels = len(study.data.label_noise) if study.search.kind == "grid" else 1
    confirm = (f"; then {count(len(study.arms), 'arm')}' selections × {len(seeds)} fresh seeds"
               f"{f' × {levels} noise rates' if levels > 1 else ''} = {len(study.arms) * levels * len(seeds)} "
               "confirmation trials" if seeds else "")
    if study.search.kind == "grid":
        settings = settings_count(study)
        noise = len(study.data.label_noise)
        rates = f" × {noise} noise rates" if noise > 1 else ""
        return (f"{count(grid_size(study), 'trial')} = {count(settings, 'setting')} [{'; '.join(parts)}] × "
                f"{len(study.lr)} lr × {count(len(study.seeds), 'seed')}{rates}, "
                f"{study.train.epochs} epochs each{confirm}")
    return (f"Optuna: {study.search.n_trials} configurations per arm [{', '.join(study.arms)}] × "
            f"{seeds_per_configuration(study)} seeds, sampler {study.search.sampler}, "
            f"scheduler {study.search.scheduler}{confirm}")


def arm_settings(arm: arms.ArmGrid) -> int:
    """The settings of an arm's own grid (the product of its axes), computed without building them."""
    return math.prod(len(getattr(arm, h) or ()) for h in arm.hyperparameters())


def settings_count(study: Study) -> int:
    return sum(arm_settings(arm) for arm in study.arms.values())


def first_trial(study: Study) -> TrialConfig:
    """The first trial of a grid study (`expand_grid(study)[0]`), built alone."""
    name, arm = next(iter(study.arms.items()))
    point = {h: (getattr(arm, h) or ())[0] for h in arm.hyperparameters()}
    return trial_config(study, name, point, study.lr[0], study.seeds[0], study.data.label_noise[0])


def grid_size(study: Study) -> int:
    """The number of trials of a grid study, computed without building them."""
    return settings_count(study) * len(study.data.label_noise) * len(study.lr) * len(study.seeds)


def optuna_configurations(study: Study) -> int:
    """Configurations an Optuna stage samples: `n_trials` per arm."""
    return study.search.n_trials * len(study.arms)


def seeds_per_configuration(study: Study) -> int:
    return study.search.seeds_per_trial or len(study.seeds)


def threads(study: Study) -> int:
    """Intra-op threads of one trial: `resources.torch_threads`, else its CPU count."""
    return study.resources.torch_threads or max(1, int(study.resources.cpu))


def confirmation_trials(study: Study) -> int:
    """Trials of the confirmation stage: each arm's selection (per noise rate of a grid) × the fresh seeds."""
    levels = len(study.data.label_noise) if study.search.kind == "grid" else 1
    return len(study.arms) * levels * len(confirmation_seeds(study))


def planned_trials(study: Study) -> int:
    """Trials a sweep of `study` runs (an Optuna configuration is one trial per seed), its confirmation included."""
    if study.search.kind == "grid":
        return grid_size(study) + confirmation_trials(study)
    return optuna_configurations(study) * seeds_per_configuration(study) + confirmation_trials(study)


@dataclass(frozen=True)
class Entry:
    """What an executor runs as one unit: member trials trained in lockstep (one for a grid trial, one per
    seed for an Optuna configuration). `key` names it (the trial id of a grid trial, `optuna-<number>` for a
    configuration); `params` are its flat hyperparameters — arm, the arm's own by their study-file names,
    lr, seeds, label noise — from which `members` rebuilds the trials (what trackers show, too)."""

    key: str
    params: dict[str, Any]
    members: tuple[TrialConfig, ...]


def entry_params(study: Study, arm: str, point: dict[str, Any], lr: float, seeds: list[int], noise: float,
                 stage: str = "tune") -> dict[str, Any]:
    grid = study.arms[arm]
    return {"arm": arm, "kind": grid.kind, "setting": arms.label(grid.kind, point),
            **{grid.study_key(h): point[h] for h in grid.hyperparameters()}, "lr": lr, "seeds": list(seeds),
            "label_noise": noise, "stage": stage}


def members(study: Study, params: dict[str, Any]) -> tuple[TrialConfig, ...]:
    """The member trials of an entry, rebuilt from its flat `params` (see `Entry`)."""
    grid = study.arms[params["arm"]]
    point = {h: params[grid.study_key(h)] for h in grid.hyperparameters()}
    return tuple(trial_config(study, params["arm"], point, float(params["lr"]), int(seed), params["label_noise"],
                              params.get("stage", "tune")) for seed in params["seeds"])


def grid_entries(study: Study, skip: set[str] | frozenset[str] = frozenset()) -> list[Entry]:
    """One entry per grid trial not in `skip`, in study order."""
    out = []
    for name, grid in study.arms.items():
        for point in grid.points():
            for noise in study.data.label_noise:
                for lr in study.lr:
                    for seed in study.seeds:
                        cfg = trial_config(study, name, point, lr, seed, noise)
                        if cfg.trial_id not in skip:
                            out.append(Entry(cfg.trial_id, entry_params(study, name, point, lr, [seed], noise), (cfg,)))
    return out


def confirmation_entries(study: Study, selected: dict[tuple[str, float], tuple[dict[str, Any], float]],
                         skip: set[str] | frozenset[str] = frozenset()) -> list[Entry]:
    """One entry per confirmation seed of each selected configuration (`selected`: (arm, label noise) →
    (its hyperparameters, lr)) not in `skip`, in study order."""
    out = []
    for (arm, noise), (point, lr) in selected.items():
        for seed in confirmation_seeds(study):
            cfg = trial_config(study, arm, point, lr, seed, noise, "confirm")
            if cfg.trial_id not in skip:
                out.append(Entry(cfg.trial_id, entry_params(study, arm, point, lr, [seed], noise, "confirm"), (cfg,)))
    return out
