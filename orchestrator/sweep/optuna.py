"""The Optuna tuning stage: its define-by-run space, its sampler, the study a resumed stage
continues, and the best configurations it hands to the full-length comparison.

A configuration is (arm, the arm's hyperparameters, lr); it is trained on `seeds_per_trial`
seeds in lockstep and scores the mean over them of the selection rule's score
(`trials.selection`: best val robust accuracy, 0 if diverged). Each arm gets exactly
`n_trials` configurations: a new Optuna trial goes to the arm with the fewest so far.

A resumed stage never unpickles Ray's experiment state: its Optuna study is rebuilt from
decaylab's own records (finished configurations added as completed trials, unfinished ones
enqueued again so their checkpoints are picked up), or, with `search.storage`, continued in
the Optuna journal (JSON lines) with its stale running trials marked failed and re-enqueued.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from orchestrator import records, results, safe_yaml
from orchestrator.spec import Study, trial_config
from orchestrator.storage import RunDir
from trials import selection
from trials.config import TrialConfig


class OptunaSpace:
    """Define-by-run space (picklable: Tune saves the searcher). The arm is fixed first (an enqueued
    trial says which; otherwise the arm with the fewest trials so far), then its own hyperparameters
    and lr are suggested: other arms' parameters never are (a conditional space)."""

    def __init__(self, study: Study):
        self.study = study

    def __call__(self, trial) -> dict:
        names = list(self.study.methods)
        name = trial.user_attrs.get("method") or least_used_arm(trial.study, names)
        trial.set_user_attr("method", name)
        arm, space = self.study.methods[name], self.study.search.space
        for h in arm.hyperparameters():
            key = f"{name}.{arm.study_key(h)}"
            _suggest(trial, key, space.get(key), getattr(arm, h) or ())
        _suggest(trial, "lr", space.get("lr"), self.study.lr)
        return {"method": name}


def least_used_arm(study, names: list[str]) -> str:
    counts = Counter(t.user_attrs.get("method") for t in study.get_trials(deepcopy=False))
    return min(names, key=lambda n: (counts[n], names.index(n)))


def _suggest(trial, name: str, rng, choices: tuple) -> None:
    if rng is not None:
        trial.suggest_float(name, rng.low, rng.high, log=rng.log)
    else:
        trial.suggest_categorical(name, list(choices))


def distributions(study: Study, method: str) -> dict[str, Any]:
    import optuna

    arm, space = study.methods[method], study.search.space

    def dist(key: str, choices: tuple):
        rng = space.get(key)
        if rng is not None:
            return optuna.distributions.FloatDistribution(rng.low, rng.high, log=rng.log)
        return optuna.distributions.CategoricalDistribution(list(choices))

    out = {f"{method}.{arm.study_key(h)}": dist(f"{method}.{arm.study_key(h)}", getattr(arm, h) or ())
           for h in arm.hyperparameters()}
    return out | {"lr": dist("lr", study.lr)}


def make_sampler(study: Study, done: int = 0):
    """The study's seeded sampler; `done` configurations already trained shift its seed, so that a
    resumed stage does not replay the first run's draws (they would propose those configurations again)."""
    import optuna

    seed = study.search.seed + done
    samplers = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                "random": lambda: optuna.samplers.RandomSampler(seed=seed),
                "gp": lambda: optuna.samplers.GPSampler(seed=seed),
                "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed)}
    return samplers[study.search.sampler]()


def members(study: Study, params: dict) -> list[TrialConfig]:
    """The trials (one per seed) of the configuration an Optuna trial sampled."""
    name = params["method"]
    arm = study.methods[name]
    point = {h: params[f"{name}.{arm.study_key(h)}"] for h in arm.hyperparameters()}
    seeds = study.seeds[: study.search.seeds_per_trial or len(study.seeds)]
    # Optuna tunes on the first label-noise level; a noise grid belongs to the grid comparison
    return [trial_config(study, name, point, float(params["lr"]), seed, study.data.label_noise[0]) for seed in seeds]


def planned(study: Study) -> int:
    return study.search.n_trials * len(study.methods)


# ------------------------------------------------------------------------------- resume


def configurations(run: RunDir, study: Study) -> dict[tuple, dict]:
    """The configurations with a record: params (Optuna's names) → {"scores", "complete"}."""
    found: dict[tuple, dict] = defaultdict(lambda: {"scores": [], "ended": 0, "params": None})
    for state in results.trial_states(run).values():
        if not state["rows"] and not state.get("config"):
            continue
        cfg = TrialConfig.from_dict(state["config"]) if state.get("config") else None
        row = state["rows"][0] if state["rows"] else None
        method = cfg.method if cfg else row["method"]
        if method not in study.methods:
            continue
        arm = study.methods[method]
        point = cfg.params if cfg else {h: row[h] for h in arm.hyperparameters()}
        params = {"method": method, **{f"{method}.{arm.study_key(h)}": point[h] for h in arm.hyperparameters()},
                  "lr": cfg.lr if cfg else row["lr"]}
        entry = found[tuple(sorted(params.items()))]
        entry["params"] = params
        if state["status"] in results.ENDED:
            entry["ended"] += 1
            entry["scores"].append(selection.score(state["status"], selection.summarize(state["rows"])
                                                   ["best_val_robust_acc"])
                                   if state["status"] != "stopped" else selection.objective(state["rows"], "ok"))
    seeds = len(study.seeds[: study.search.seeds_per_trial or len(study.seeds)])
    return {k: {**v, "complete": v["ended"] >= seeds} for k, v in found.items()}


def continued_study(run: RunDir, study: Study) -> tuple[Any, str, int]:
    """(Optuna storage, study name, configurations still to sample) for a resumed tuning stage."""
    import optuna

    configs = configurations(run, study)
    name = study.name
    if study.search.storage:
        storage = journal(study)
        ot = optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(study))
        for trial in ot.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
            ot.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # its process is gone
        complete = len(ot.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]))
    else:
        storage = optuna.storages.InMemoryStorage()
        ot = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        complete = 0
        for entry in configs.values():
            scores = [s for s in entry["scores"] if not math.isnan(s)]
            if entry["complete"] and scores:
                params = {k: v for k, v in entry["params"].items() if k != "method"}
                ot.add_trial(optuna.trial.create_trial(
                    params=params, distributions=distributions(study, entry["params"]["method"]),
                    value=sum(scores) / len(scores), user_attrs={"method": entry["params"]["method"]}))
                complete += 1
    for entry in configs.values():
        if not entry["complete"]:
            params = {k: v for k, v in entry["params"].items() if k != "method"}
            ot.enqueue_trial(params, user_attrs={"method": entry["params"]["method"]})
    return storage, name, max(planned(study) - complete, 0)


def journal(study: Study):
    import optuna

    path = Path(study.search.storage).expanduser()
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


# ------------------------------------------------------------------------- best configurations


def best_configurations(run: RunDir, study: Study) -> dict[str, list[tuple[float, dict]]]:
    """arm → [(mean score over seeds, its params in Optuna's names)], best first, top_k per arm."""
    out: dict[str, list] = defaultdict(list)
    configs = configurations(run, study).values()
    for entry in configs:
        scores = [s for s in entry["scores"] if not math.isnan(s)]
        if scores:
            out[entry["params"]["method"]].append((sum(scores) / len(scores), entry["params"]))
    return {arm: sorted(v, key=lambda t: -t[0])[: study.search.top_k] for arm, v in out.items()}


def write_best_grid(run: RunDir, study: Study) -> str:
    """The best configurations as a grid study file (`RUN_DIR/best_grid.yaml`), to run at full length."""
    best = best_configurations(run, study)
    d = study.to_dict()
    d["name"] = f"{study.name}-best"
    d["description"] = (f"Best configurations of the Optuna stage {study.name} (top {study.search.top_k} per arm "
                        "by mean best val robust accuracy over seeds), at full length on every seed.")
    d["search"] = {"kind": "grid"}
    d["methods"], lrs = {}, set()
    for name, arm in study.methods.items():
        picks = best.get(name, [])
        if picks:
            section: dict[str, Any] = {"kind": arm.kind}
            for h in arm.hyperparameters():
                key = arm.study_key(h)
                section[key] = sorted({p[f"{name}.{key}"] for _, p in picks})
            d["methods"][name] = section
            lrs |= {p["lr"] for _, p in picks}
    d["lr"] = sorted(lrs) or list(study.lr)
    run.write_atomic(safe_yaml.dump(d).encode(), "best_grid.yaml")
    return run.uri("best_grid.yaml")


__all__ = ["OptunaSpace", "continued_study", "make_sampler", "members", "records", "write_best_grid"]
