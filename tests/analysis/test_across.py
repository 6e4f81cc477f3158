"""`decaylab compare`: arms against a reference across studies, on run directories with known per-seed values.

Three runs, four strata (run a at label noise 0% and 20%, runs b and c at 0%), five tuning seeds each, one
configuration per arm, so each arm's cross-fitted headline value of seed s is exactly the test accuracy written
for it. The reference wd has BASE + the stratum's offset; `eff` is wd + a known effect on every seed of every
stratum; `awd` has wd's values permuted over the seeds (no effect: P = ½ exactly); `big` is 20 points better
in stratum a/0% only and a permutation of wd elsewhere, and run c has no `big` at all.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from helpers import analysis as fx
from scipy.stats import trim_mean

from analysis.across import CompareInputError, compare_runs
from analysis.across.bootstrap import Cell
from analysis.across.compute import AGGREGATE_COLUMNS, STRATUM_COLUMNS, summarise
from analysis.load import load_run
from analysis.pipeline import analyse
from bench.synthetic import config_row
from orchestrator.cli import main

SEEDS = range(5)
BASE = (0.40, 0.41, 0.42, 0.43, 0.44)
PERM = (1, 3, 0, 4, 2)  # a no-effect arm's seed s has the reference's value of seed PERM[s]
STRATA = {("a", 0.0): 0.0, ("a", 0.2): -0.1, ("b", 0.0): 0.05, ("c", 0.0): 0.02}  # offset of the reference
EFFECT = {("a", 0.0): 0.015, ("a", 0.2): 0.005, ("b", 0.0): 0.025, ("c", 0.0): 0.012}  # eff − wd, every seed
HUGE = 0.2
KINDS = {"wd": ("fixed", "lam", 1e-3), "awd": ("adaptive", "lambda_awd", 0.02),
         "eff": ("adaptive", "lambda_awd", 0.01), "big": ("adaptive", "lambda_awd", 0.05)}
TOP_KEYS = {"schema", "written_by", "reference", "metric", "checkpoint", "alpha", "min_effect", "meaningful",
            "adjustment", "bootstrap", "runs", "strata", "arms", "per_stratum", "missing", "profiles", "notes",
            "files"}


def trial(study: str, method: str, seed: int, test: float, noise: float = 0.0, correct=None) -> dict:
    """One finished tuning trial of `method` whose final PGD accuracy (best checkpoint) is `test`."""
    kind, name, value = KINDS[method]
    cfg = config_row(study, method, kind, {name: value}, 0.03, seed, noise)
    return {"cfg": cfg, "val": 0.45, "test": test, "status": "ok", "correct": correct}


def values(key: tuple[str, float]) -> dict[str, list[float]]:
    """The per-seed values of every arm in one stratum, by construction."""
    wd = [b + STRATA[key] for b in BASE]
    permuted = [wd[PERM[s]] for s in SEEDS]
    out = {"wd": wd, "eff": [v + EFFECT[key] for v in wd], "awd": permuted}
    if key[0] != "c":
        out["big"] = [v + HUGE for v in wd] if key == ("a", 0.0) else permuted
    return out


def write(path, study: str, **fields):
    trials = [trial(study, arm, s, v[s], level) for (name, level) in STRATA if name == study
              for arm, v in values((name, level)).items() for s in SEEDS]
    return fx.write_known_run(path, trials, tuning_seeds=SEEDS, **fields)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("across")
    return {name: write(root / name, name) for name in ("a", "b", "c")}


@pytest.fixture(scope="module")
def cli(runs, tmp_path_factory):
    """`decaylab compare a b c --out OUT`: its exit status, output directory and compare.json."""
    out = tmp_path_factory.mktemp("compare") / "out"
    status = main(["compare", *(str(runs[n]) for n in "abc"), "--out", str(out)])
    text = (out / "compare.json").read_text()
    data = json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON {token}"))
    return status, out, data


def rows(data: dict, arm: str) -> dict:
    arms = {r["arm"]: r for r in data["arms"]}
    strata = {r["stratum"]: r for r in data["per_stratum"] if r["arm"] == arm}
    return arms[arm], strata


def label(key: tuple[str, float]) -> str:
    return f"{key[0]}, noise {100 * key[1]:g}%"


# ---------------------------------------------------------------- brute force


def brute_p(arm: list[float], ref: list[float]) -> Fraction:
    """Share of (arm seed, reference seed) pairs the arm wins, ties ½, counted one pair at a time."""
    wins = Fraction(0)
    for x in arm:
        for y in ref:
            wins += 1 if x > y else Fraction(1, 2) if x == y else 0
    return wins / (len(arm) * len(ref))


def exact_bootstrap(per_stratum: list[tuple[list[float], list[float]]]) -> dict[Fraction, Fraction]:
    """The exact distribution of the mean over strata of P when each stratum draws n − 1 of its n seeds (every
    ordered draw listed), a drawn seed bringing its arm and its reference value."""
    total: dict[Fraction, Fraction] = {Fraction(0): Fraction(1)}
    for arm, ref in per_stratum:
        n = len(arm)
        draws = list(itertools.product(range(n), repeat=n - 1))
        one = Counter(brute_p([arm[i] for i in d], [ref[i] for i in d]) for d in draws)
        total = _convolve(total, {p: Fraction(k, len(draws)) for p, k in one.items()})
    return {s / len(per_stratum): q for s, q in total.items()}


def _convolve(a: dict, b: dict) -> dict:
    out: dict = {}
    for (x, p), (y, q) in itertools.product(a.items(), b.items()):
        out[x + y] = out.get(x + y, 0) + p * q
    return out


def quantile(dist: dict[Fraction, Fraction], q: float) -> float:
    """The smallest value whose cumulative probability reaches q."""
    cumulative = Fraction(0)
    for value in sorted(dist):
        cumulative += dist[value]
        if cumulative >= Fraction(q):
            return float(value)
    return float(max(dist))


@pytest.mark.slow
def test_probability_of_improvement_and_its_interval_match_a_brute_force_count(cli):
    status, _, data = cli
    assert status == 0
    agg, strata = rows(data, "eff")
    pairs = []
    for key in STRATA:
        v = values(key)
        p = brute_p(v["eff"], v["wd"])
        assert strata[label(key)]["p_improvement"] == pytest.approx(float(p), abs=1e-12)
        assert strata[label(key)]["mean_diff"] == pytest.approx(EFFECT[key], abs=1e-9)
        pairs.append((v["eff"], v["wd"]))
    assert agg["p_improvement"] == pytest.approx(float(np.mean([float(brute_p(*p)) for p in pairs])), abs=1e-12)
    assert agg["mean_diff"] == pytest.approx(np.mean(list(EFFECT.values())), abs=1e-9)
    pooled = [EFFECT[key] for key in STRATA for _ in SEEDS]  # 20 pairs: rliable's IQM drops 5 at each end
    assert agg["iqm_diff"] == pytest.approx(trim_mean(pooled, 0.25), abs=1e-9)
    # The interval: the Monte Carlo percentiles (2,000 replicates) against the exact bootstrap distribution,
    # at the Bonferroni level over the three arms; 0.006 in probability is three Monte Carlo sds at these tails.
    level = data["adjustment"]["interval_level"]
    assert data["adjustment"]["family_size"] == 3 and level == pytest.approx(1 - 0.05 / 3)
    dist = exact_bootstrap(pairs)
    assert sum(dist.values()) == 1
    tail, slack = (1 - level) / 2, 0.006
    assert quantile(dist, tail - slack) <= agg["p_low"] <= quantile(dist, tail + slack)
    assert quantile(dist, 1 - tail - slack) <= agg["p_high"] <= quantile(dist, 1 - tail + slack)
    assert agg["p_low"] > 0.5 and agg["verdict"] in ("better", "meaningfully better")


def test_no_effect_is_called_better_in_at_most_5_percent_of_200_simulated_comparisons():
    """200 comparisons of 4 strata × 5 seeds, arm and reference drawn alike (sd 1 point; the strata differ by
    5 points), judged as `compare_runs` judges an arm (`summarise`), a family of one arm: the strictest case."""
    rng = np.random.default_rng(2024)
    repetitions, called = 200, Counter()
    for r in range(repetitions):
        cells = [Cell(k, np.arange(5), 0.4 + 0.05 * k + rng.normal(0, 0.01, 5), 0.4 + 0.05 * k + rng.normal(0, 0.01, 5))
                 for k in range(4)]
        called[summarise(cells, alpha=0.05, family_size=1, min_effect=0.01, seed=[0, r])["verdict"]] += 1
    assert called["better"] + called["meaningfully better"] <= 0.05 * repetitions, called
    assert called["worse"] + called["meaningfully worse"] <= 0.05 * repetitions, called


@pytest.mark.slow
def test_a_huge_effect_in_one_stratum_is_not_a_meaningful_improvement(cli):
    _, _, data = cli
    agg, strata = rows(data, "big")
    assert strata[label(("a", 0.0))]["p_improvement"] == 1.0 and agg["strata"] == 3
    assert agg["p_improvement"] == pytest.approx((1 + 0.5 + 0.5) / 3)  # the others show no effect: P = ½
    assert agg["mean_diff"] == pytest.approx(HUGE / 3)  # 6.7 points on average, all of it from one stratum
    assert agg["verdict"] != "meaningfully better" and agg["p_low"] < 0.75
    assert agg["missing_strata"] == [label(("c", 0.0))]
    assert {"arm": "big", "stratum": label(("c", 0.0)), "reason": "not an arm of this study"} in data["missing"]
    none, _ = rows(data, "awd")
    assert none["p_improvement"] == 0.5 and none["mean_diff"] == pytest.approx(0.0, abs=1e-12)


def test_the_cli_writes_the_documented_files(cli, runs):
    status, out, data = cli
    assert status == 0
    assert set(data) == TOP_KEYS and data["schema"] == "decaylab.compare/1"
    assert data["reference"] == "wd" and data["metric"] == "pgd_acc" and data["checkpoint"] == "best"
    assert all(set(r) == set(AGGREGATE_COLUMNS) for r in data["arms"])
    assert all(set(r) == set(STRATUM_COLUMNS) for r in data["per_stratum"])
    assert [s["label"] for s in data["strata"]] == [label(k) for k in STRATA]
    assert [r["study"] for r in data["runs"]] == ["a", "b", "c"] and all("study_yaml_sha256" in r for r in data["runs"])
    assert all(r["threat_model"]["text"] == "pgd-10, ε = 0.25" for r in data["runs"])
    for name in ("compare.md", "compare.html", "figures/forest.png", "figures/forest.pdf",
                 "figures/probability_of_improvement.png", "figures/performance_profiles.png",
                 "tables/across_strata.csv", "tables/across_strata.tex", "tables/strata.md", "tables/runs.csv"):
        assert (out / name).is_file(), name
        assert name in data["files"]
    assert set(data["profiles"]["arms"]) == {"wd", "awd", "eff", "big"}
    assert "data:image/png;base64," in (out / "compare.html").read_text()
    # Each stratum's own verdict is its report's headline row.
    own = analyse(load_run(runs["b"])).headline.set_index("method")
    b_rows = {r["arm"]: r for r in data["per_stratum"] if r["stratum"] == label(("b", 0.0))}
    for arm in ("eff", "awd", "big"):
        assert b_rows[arm]["verdict_source"] == "report" and b_rows[arm]["verdict"] == own.loc[arm, "verdict"]
        assert b_rows[arm]["mean_diff"] == pytest.approx(own.loc[arm, "mean_diff"], abs=1e-12)


@pytest.mark.slow
def test_mixed_threat_models_are_refused(runs, tmp_path, capsys):
    attack = {"train": {"kind": "pgd", "eps": 0.25, "steps": 5, "step_size": 0.1},
              "eval": {"kind": "pgd", "eps": 0.1, "steps": 10}}
    other = write(tmp_path / "b_small_eps", "b", attack=attack)
    assert main(["compare", str(runs["a"]), str(other), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "different threat models" in err and "ε = 0.25" in err and "ε = 0.1" in err and "hint:" in err
    assert not (tmp_path / "out").exists()
    allowed = compare_runs([runs["a"], other], allow_mixed=True)  # then the output says so
    said = "mixed threat models: a: pgd-10, ε = 0.25; b: pgd-10, ε = 0.1"
    assert any(note.startswith(said) for note in allowed.notes)


def test_the_same_run_twice_is_refused(runs, capsys):
    assert main(["compare", str(runs["a"]), f"{runs['a']}/.", str(runs["b"])]) == 2
    assert "the same run directory as" in capsys.readouterr().err


def test_one_stratum_is_refused(runs, capsys):
    assert main(["compare", str(runs["c"])]) == 2
    assert "use `decaylab report RUN_DIR` for one study" in capsys.readouterr().err


@pytest.mark.slow
def test_another_checkpoint_reads_the_same_trials_there(runs):
    c = compare_runs([runs["b"], runs["c"]], checkpoint="last")
    per = c.per_stratum.set_index(["arm", "stratum"])
    # The last checkpoint is the best one − 2 points for every trial: the differences do not change.
    assert per.loc[("eff", label(("b", 0.0))), "mean_diff"] == pytest.approx(EFFECT[("b", 0.0)], abs=1e-9)
    assert set(c.per_stratum["verdict_source"]) == {"computed"}  # not the report's headline: tested afresh
    assert [s.checkpoint for s in c.studies] == ["last", "last"]
    with pytest.raises(CompareInputError, match="no pgd_acc at the ema checkpoint"):
        compare_runs([runs["b"], runs["c"]], checkpoint="ema")


@pytest.mark.slow
def test_two_level_needs_per_example_correctness(tmp_path):
    rng = np.random.default_rng(0)

    def run(name: str, stored: bool):
        trials = []
        for s in range(3):
            for arm, p in (("wd", 0.4), ("eff", 0.45)):
                correct = rng.random(200) < p
                trials.append(trial(name, arm, s, correct.mean(), correct=correct if stored else None))
        return fx.write_known_run(tmp_path / name, trials, tuning_seeds=range(3))

    with_correct, other, without = run("x", True), run("y", True), run("z", False)
    seeds_only = compare_runs([with_correct, other])
    both = compare_runs([with_correct, other], two_level=True)
    assert both.two_level and both.aggregate["mean_diff"].iloc[0] == seeds_only.aggregate["mean_diff"].iloc[0]
    assert np.isfinite(both.aggregate[["p_low", "p_high", "mean_low", "mean_high"]].to_numpy()).all()
    with pytest.raises(CompareInputError, match="per-example correctness") as refused:
        compare_runs([with_correct, without], two_level=True)
    assert refused.value.hint.startswith("drop --two-level")
