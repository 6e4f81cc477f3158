"""The Optuna tuning stage, driven by ask and tell: its define-by-run space, its sampler and pruner, the
study a resumed stage continues, and the best configurations it hands to the full-length comparison.

A configuration is (arm, the arm's hyperparameters, lr); it is trained on `seeds_per_trial`
seeds in lockstep and scores the mean over them of the selection rule's score
(`trials.selection`: best val robust accuracy, 0 if diverged). Each arm gets exactly
`n_trials` configurations: a new Optuna trial goes to the arm with the fewest so far.

The stage's Optuna study lives in a journal (JSON lines; `RUN_DIR/optuna.journal` unless
`search.storage` says otherwise), which optuna-dashboard can watch. A resumed stage never unpickles
Ray's experiment state: it continues the journal, or, without one, rebuilds the study from decaylab's
own records (finished configurations added as completed trials, unfinished ones enqueued again so
their checkpoints are picked up).

`scheduler: asha` stops configurations early with Optuna's asynchronous successive halving pruner
(`SuccessiveHalvingPruner`), on the number of evaluations as its clock: the same rule whichever
executor runs the trials.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from orchestrator.run import results
from orchestrator.run.layout import BEST_GRID, JOURNAL
from orchestrator.run.storage import RunDir
from orchestrator.study import safe_yaml
from orchestrator.study.plan import Entry, entry_params, members, optuna_configurations, seeds_per_configuration
from orchestrator.study.schema import Study
from trials import selection
from trials.config import TrialConfig


class OptunaSpace:
    """Define-by-run space (picklable: Tune saves the searcher). The arm is fixed first (an enqueued
    trial says which; otherwise the arm with the fewest trials so far), then its own hyperparameters
    and lr are suggested: other arms' parameters never are (a conditional space)."""

    def __init__(self, study: Study):
        self.study = study

    def __call__(self, trial) -> dict:
        names = list(self.study.arms)
        name = trial.user_attrs.get("arm") or least_used_arm(trial.study, names)
        trial.set_user_attr("arm", name)
        arm, space = self.study.arms[name], self.study.search.space
        for h in arm.hyperparameters():
            key = f"{name}.{arm.study_key(h)}"
            _suggest(trial, key, space.get(key), getattr(arm, h) or ())
        _suggest(trial, "lr", space.get("lr"), self.study.lr)
        return {"arm": name}


def least_used_arm(study, names: list[str]) -> str:
    """The arm with the fewest configurations that count: a failed one does not (a resumed stage enqueues an
    interrupted configuration again, and counting both would give its arm one configuration too many)."""
    import optuna

    failed = optuna.trial.TrialState.FAIL
    counts = Counter(t.user_attrs.get("arm") for t in study.get_trials(deepcopy=False) if t.state != failed)
    return min(names, key=lambda n: (counts[n], names.index(n)))


def _suggest(trial, name: str, rng, choices: tuple) -> None:
    if rng is not None:
        trial.suggest_float(name, rng.low, rng.high, log=rng.log)
    else:
        trial.suggest_categorical(name, list(choices))


def distributions(study: Study, name: str) -> dict[str, Any]:
    import optuna

    arm, space = study.arms[name], study.search.space

    def dist(key: str, choices: tuple):
        rng = space.get(key)
        if rng is not None:
            return optuna.distributions.FloatDistribution(rng.low, rng.high, log=rng.log)
        return optuna.distributions.CategoricalDistribution(list(choices))

    out = {f"{name}.{arm.study_key(h)}": dist(f"{name}.{arm.study_key(h)}", getattr(arm, h) or ())
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


# ------------------------------------------------------------------------------- resume


def configurations(run: RunDir, study: Study) -> dict[tuple, dict]:
    """The configurations with a record: params (Optuna's names) → {"scores", "complete"}."""
    found: dict[tuple, dict] = defaultdict(lambda: {"scores": [], "ended": 0, "params": None})
    for state in results.trial_states(run).values():
        if not state["rows"] and not state.get("config"):
            continue
        cfg = TrialConfig.from_dict(state["config"]) if state.get("config") else None
        row = state["rows"][0] if state["rows"] else None
        name = cfg.arm if cfg else row["method"]
        if name not in study.arms:
            continue
        arm = study.arms[name]
        point = cfg.params if cfg else {h: row[h] for h in arm.hyperparameters()}
        params = {"arm": name, **{f"{name}.{arm.study_key(h)}": point[h] for h in arm.hyperparameters()},
                  "lr": cfg.lr if cfg else row["lr"]}
        entry = found[tuple(sorted(params.items()))]
        entry["params"] = params
        if state["status"] in results.ENDED:
            entry["ended"] += 1
            entry["scores"].append(selection.score(state["status"], selection.summarize(state["rows"])
                                                   ["best_val_robust_acc"])
                                   if state["status"] != "stopped" else selection.objective(state["rows"], "ok"))
    seeds = seeds_per_configuration(study)
    return {k: {**v, "complete": v["ended"] >= seeds} for k, v in found.items()}


def make_pruner(study: Study):
    """`scheduler: asha`: asynchronous successive halving on the evaluations done; else never prune."""
    import optuna

    if study.search.scheduler == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=study.search.grace_period,
                                                      reduction_factor=study.search.reduction_factor)
    return optuna.pruners.NopPruner()


def open_study(run: RunDir, study: Study) -> tuple[Any, int]:
    """(Optuna study, configurations still to sample) of the tuning stage, new or continued: from its journal
    when it has one holding the study (stale running trials marked failed), else rebuilt from decaylab's own
    records (finished configurations added as completed trials). Configurations with records that have not
    ended are enqueued again, so their trials continue from their checkpoints."""
    import optuna

    ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    path = journal_path(run, study)
    storage = journal(path) if path is not None else None
    if path is not None and path.is_file() and study.name in {s.study_name for s in storage.get_all_studies()}:
        ot = optuna.load_study(study_name=study.name, storage=storage, sampler=make_sampler(study),
                               pruner=make_pruner(study))
        for trial in ot.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
            ot.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # its process is gone
        complete = len(ot.get_trials(deepcopy=False, states=ended))
    else:
        ot = optuna.create_study(study_name=study.name, storage=storage, direction="maximize",
                                 pruner=make_pruner(study))
        complete = add_finished(ot, run, study)
    waiting = [t.params for t in ot.get_trials(deepcopy=False, states=[optuna.trial.TrialState.WAITING])]
    for entry in configurations(run, study).values():
        params = {k: v for k, v in entry["params"].items() if k != "arm"}
        if not entry["complete"] and params not in waiting:
            ot.enqueue_trial(params, user_attrs={"arm": entry["params"]["arm"]})
    done = min(complete, optuna_configurations(study))
    ot.sampler = make_sampler(study, done=done)
    return ot, optuna_configurations(study) - done


def add_finished(ot, run: RunDir, study: Study) -> int:
    """Add every configuration whose trials all ended to `ot` as a completed trial; how many."""
    import optuna

    added = 0
    for entry in configurations(run, study).values():
        scores = [s for s in entry["scores"] if not math.isnan(s)]
        if entry["complete"] and scores:
            params = {k: v for k, v in entry["params"].items() if k != "arm"}
            ot.add_trial(optuna.trial.create_trial(
                params=params, distributions=distributions(study, entry["params"]["arm"]),
                value=sum(scores) / len(scores), user_attrs={"arm": entry["params"]["arm"]}))
            added += 1
    return added


def journal_path(run: RunDir, study: Study) -> Path | None:
    """The stage's Optuna journal: `search.storage` (a relative path is inside the run directory), by default
    `RUN_DIR/optuna.journal`; None on object storage, where a journal file cannot be appended to."""
    storage = Path(study.search.storage).expanduser() if study.search.storage else Path(JOURNAL)
    if storage.is_absolute():
        return storage
    return Path(run.inside(*storage.parts)) if run.local else None


def journal(path: Path):
    import optuna

    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


class OptunaWork:
    """The tuning stage as work for an executor: each entry is a configuration Optuna proposes (asked when
    an executor has room for it), trained on its seeds; its objective is told back when it ends, and after
    every epoch the pruner may stop it."""

    def __init__(self, run: RunDir, study: Study):
        self.study = study
        self.ot, self.total = open_study(run, study)
        self.space = OptunaSpace(study)
        self.asked = 0
        self.trials: dict[str, Any] = {}

    def next(self) -> Entry | None:
        if self.asked >= self.total:
            return None
        self.asked += 1
        trial = self.ot.ask()
        arm = self.space(trial)["arm"]
        grid = self.study.arms[arm]
        point = {h: trial.params[f"{arm}.{grid.study_key(h)}"] for h in grid.hyperparameters()}
        seeds = list(self.study.seeds[: seeds_per_configuration(self.study)])
        # Optuna tunes on the first label-noise level; a noise grid belongs to the grid comparison
        params = entry_params(self.study, arm, point, float(trial.params["lr"]), seeds, self.study.data.label_noise[0])
        key = f"optuna-{trial.number}"
        self.trials[key] = trial
        return Entry(key, params, members(self.study, params))

    def epoch(self, entry: Entry, report: dict) -> bool:
        """After an epoch of `entry`: whether the pruner stops it (on its evaluations so far)."""
        if self.study.search.scheduler != "asha" or not math.isfinite(report.get("objective", math.nan)):
            return False
        trial = self.trials[entry.key]
        trial.report(float(report["objective"]), int(report["evaluations"]))
        return trial.should_prune()

    def ended(self, entry: Entry, status: str, report: dict) -> None:
        import optuna

        trial = self.trials.pop(entry.key, None)
        if trial is None:
            return
        value = report.get("objective", math.nan)
        if status in ("ok", "diverged") and math.isfinite(value):
            self.ot.tell(trial, float(value))
        elif status == "stopped":
            self.ot.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.ot.tell(trial, state=optuna.trial.TrialState.FAIL)


# ------------------------------------------------------------------------- best configurations


def best_configurations(run: RunDir, study: Study) -> dict[str, list[tuple[float, dict]]]:
    """arm → [(mean score over seeds, its params in Optuna's names)], best first, top_k per arm."""
    out: dict[str, list] = defaultdict(list)
    configs = configurations(run, study).values()
    for entry in configs:
        scores = [s for s in entry["scores"] if not math.isnan(s)]
        if scores:
            out[entry["params"]["arm"]].append((sum(scores) / len(scores), entry["params"]))
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
    for name, arm in study.arms.items():
        picks = best.get(name, [])
        if picks:
            section: dict[str, Any] = {"kind": arm.kind}
            for h in arm.hyperparameters():
                key = arm.study_key(h)
                section[key] = sorted({p[f"{name}.{key}"] for _, p in picks})
            d["methods"][name] = section
            lrs |= {p["lr"] for _, p in picks}
    d["lr"] = sorted(lrs) or list(study.lr)
    run.write_atomic(safe_yaml.dump(d).encode(), BEST_GRID)
    return run.uri(BEST_GRID)


