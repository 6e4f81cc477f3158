"""What a study takes from another run directory: a `scheduled` arm's schedule read `from:` a finished run.

    schedules:
      replay: {from: {run: results/digits, arm: awd, setting: "λ_awd=0.05", lr: 0.1}}

becomes, when the study is loaded, the source configuration's per-epoch mean coefficient (`lambda_mean`,
the adaptive arm's λ̄) averaged over its seeds in `schedules`, each seed's own in `seed_schedules` (a
trial of the same seed replays it), and where it came from in `sources`. `setting` and `lr` may be left
out when the source arm has one of each. A source run that is missing, or whose configuration has not
finished on every seed, is refused with the reason.
"""

from __future__ import annotations

import math
from typing import Any

from orchestrator.errors import UserError
from orchestrator.run import results
from orchestrator.run.directory import open_run
from trials.arms.base import format_value
from trials.fields import control_character


def resolve_schedules(raw: dict, where: str) -> dict:
    """`raw` with every `{from: ...}` schedule of its scheduled arms read from its run directory."""
    methods = raw.get("methods")
    if not isinstance(methods, dict):
        return raw
    arms = {}
    for name, arm in methods.items():
        schedules = arm.get("schedules") if isinstance(arm, dict) and arm.get("kind") == "scheduled" else None
        if not isinstance(schedules, dict) or not any(is_source(v) for v in schedules.values()):
            arms[name] = arm
            continue
        arm = {**arm, "schedules": {**schedules}, "seed_schedules": {**arm.get("seed_schedules", {})},
               "sources": {**arm.get("sources", {})}}
        for key, value in schedules.items():
            if is_source(value):
                spec = value["from"]
                mean, per_seed, found = read_schedule(spec, f"{where}: methods.{name}.schedules.{key}.from")
                arm["schedules"][key], arm["seed_schedules"][key], arm["sources"][key] = mean, per_seed, found
        arms[name] = arm
    return {**raw, "methods": arms}


def is_source(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"from"}


def read_schedule(spec: Any, where: str) -> tuple[list[float], dict[int, list[float]], dict[str, Any]]:
    """(mean λ per epoch over the source's seeds, each seed's, the source as found) of a `from:` spec."""
    if not isinstance(spec, dict) or not isinstance(spec.get("run"), str) or not isinstance(spec.get("arm"), str) \
            or set(spec) - {"run", "arm", "setting", "lr", "label_noise"} or control_character(spec["run"]):
        raise UserError(where, "expected {run: RUN_DIR, arm: ARM, setting: LABEL, lr: LR} (setting, lr and "
                        "label_noise optional)", "name the run directory and the arm whose λ̄ to replay")
    try:
        run, _ = open_run(spec["run"], check_data=False)
    except UserError as e:
        raise UserError(where, f"the source run {spec['run']!r} cannot be read: {e.reason}", e.hint) from None
    states = results.trial_states(run)
    noise = float(spec.get("label_noise", 0.0))
    rows = [(tid, s) for tid, s in states.items() if s["rows"] and s["rows"][0]["method"] == spec["arm"]
            and (s["rows"][0].get("stage") or "tune") == "tune" and s["rows"][0]["label_noise"] == noise]
    if not rows:
        raise UserError(where, f"the source run {run.location} has no trial of arm {spec['arm']!r} with rows",
                        "check the arm's name in the source study, or wait until its trials have run")
    configs = sorted({(s["rows"][0]["setting"], s["rows"][0]["lr"]) for _, s in rows})
    wanted = [(st, lr) for st, lr in configs if spec.get("setting", st) == st and spec.get("lr", lr) == lr]
    if len(wanted) != 1:
        listed = "; ".join(f"setting {st!r}, lr {format_value(lr)}" for st, lr in configs)
        raise UserError(where, f"{'no' if not wanted else 'more than one'} configuration of {spec['arm']!r} matches "
                        f"(the source has: {listed})", "give the configuration's `setting` and `lr`")
    setting, lr = wanted[0]
    chosen = {s["rows"][0]["seed"]: s for _, s in rows if (s["rows"][0]["setting"], s["rows"][0]["lr"]) == wanted[0]}
    unfinished = sorted(seed for seed, s in chosen.items() if s["status"] != "ok")
    if unfinished:
        raise UserError(where, f"the source configuration ({setting}, lr {format_value(lr)}) has not finished on "
                        f"seed(s) {unfinished} of {sorted(chosen)}",
                        f"finish it first (`decaylab resume {run.location}`)")
    per_seed = {seed: [float(r["lambda_mean"]) for r in sorted(s["rows"], key=lambda r: r["epoch"])]
                for seed, s in sorted(chosen.items())}
    if any(not math.isfinite(v) for values in per_seed.values() for v in values):
        raise UserError(where, "the source configuration logged no decay coefficient (lambda_mean) in some epoch",
                        "replay an arm that logs one, e.g. an adaptive arm")
    epochs = min(map(len, per_seed.values()))
    mean = [math.fsum(values[e] for values in per_seed.values()) / len(per_seed) for e in range(epochs)]
    return mean, per_seed, {"run": run.location, "arm": spec["arm"], "setting": setting, "lr": lr,
                            "label_noise": noise, "seeds": sorted(per_seed)}
