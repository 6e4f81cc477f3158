"""`write_compare`: several run directories -> compare.md, compare.html and compare.json, with figures/ and tables/.

The output directory follows the report's rules (`analysis.output`): new, empty, or holding an earlier
report or comparison whose recorded files are cleared; anything else is refused unless forced, and nothing
the comparison did not write is removed. The default is `reports/compare-<study>-<study>…`. Sections: the
header (runs, reference, metric, threat model, family and bootstrap), how to read it, the verdicts across
strata, the strata one by one (forest plot), performance profiles, arms missing from strata, the runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis import across_figures as af
from analysis import output, wording
from analysis.across import compare_runs
from analysis.across import summary as across_json
from analysis.across.compute import Comparison
from analysis.across.strata import threat_text
from analysis.document import to_html, to_markdown_text
from analysis.plotting import figure_style
from analysis.report import ReportWriter
from analysis.tables import Table, interval, pts
from analysis.text import md

FILES = ("compare.md", "compare.html", "compare.json")
MAX_NAME = 80  # characters of the default directory name built from the study names


def default_out(c: Comparison) -> Path:
    """reports/compare-<study>-<study>… (the first study and a count when the names run long)."""
    names = list(dict.fromkeys(s.run.safe_study_name() for s in c.studies))
    name = "compare-" + "-".join(names)
    if len(name) > MAX_NAME:
        name = f"compare-{names[0]}-and-{len(names) - 1}-more"
    return Path("reports") / name


def write_compare(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None, force: bool = False,
                  **options) -> Path:
    """Compare the runs (`analysis.across.compare_runs(run_dirs, **options)`) and write the comparison; return
    the path of compare.md."""
    c = compare_runs(run_dirs, **options)
    out = Path(out_dir) if out_dir is not None else default_out(c)
    output.prepare(out, force)
    for name in FILES:
        output.check_file(out / name)
    writer = ReportWriter(out)
    with figure_style():
        for section in SECTIONS:
            section(c, writer)
    return _write(c, writer, out)


def _write(c: Comparison, w: ReportWriter, out: Path) -> Path:
    """compare.md, compare.html and compare.json (each atomically, all made first), then the record."""
    names = [p.relative_to(out).as_posix() for p in w.files] + list(FILES)
    title = f"decaylab compare: {', '.join(s.label for s in c.studies)}"
    contents = {
        "compare.md": to_markdown_text(w.blocks),
        "compare.html": to_html(w.blocks, title),
        "compare.json": across_json.dumps(c, names),
    }
    paths = [output.write_atomic(out / name, text) for name, text in contents.items()]
    w.files += paths
    output.record(out, w.files, written_by="decaylab compare")
    return paths[0]


def metric_text(c: Comparison) -> str:
    readings = {(s.metric, s.checkpoint) for s in c.studies}
    if len(readings) > 1:
        return "mixed metrics"
    metric, checkpoint = readings.pop()
    name = {"pgd_acc": "PGD accuracy", "autoattack_acc": "AutoAttack accuracy", "clean_acc": "clean accuracy"}
    return f"{name.get(metric, metric)} ({checkpoint} checkpoint)"


def _header(c: Comparison, w: ReportWriter) -> None:
    w.heading(1, "decaylab compare: " + ", ".join(md(s.label) for s in c.studies))
    strata = len(c.strata)
    w.text(f"**{len(c.compared)} arm{wording.plural(len(c.compared))} against the reference {md(c.reference)}, "
           f"over {strata} strata (run × label-noise level) of {len(c.studies)} run{wording.plural(len(c.studies))}.**")
    models = {threat_text(s.threat_model()) for s in c.studies}
    facts = [
        f"Metric: {md(metric_text(c))} of each run's final evaluation, per seed exactly as each run's report takes "
        "its headline (confirmation trials where there are some, else cross-fitted over the tuning seeds).",
        f"Evaluation threat model: {md('; '.join(sorted(models)))}.",
        f"Family: the {c.family_size} compared arm{wording.plural(c.family_size)}, Bonferroni on the intervals' level: "
        f"every interval is at {100 * c.level:.4g}% (α = {c.alpha:g} over {c.family_size}); equivalence at "
        f"{100 * c.equivalence_level:.4g}% within ±{wording.points(c.min_effect)}; meaningful: P beyond "
        f"{c.meaningful:g} (or below {1 - c.meaningful:g}).",
        f"Stratified bootstrap: {c.resamples:,} replicates (seed {c.seed}), n − 1 of each stratum's n seeds drawn "
        "with replacement, each seed bringing its arm and reference value"
        + ("; the strata themselves resampled too" if c.resample_strata else "; the strata held fixed")
        + ("; test examples resampled within each stratum (two-level)" if c.two_level else "") + ".",
    ]
    w.bullets(facts)
    if c.notes:
        w.text("**Notes**")
        w.bullets([md(n) for n in c.notes])


def _reading(c: Comparison, w: ReportWriter) -> None:
    w.heading(2, "How to read this comparison")
    w.bullets([
        "**P(improvement)**: in each stratum, the share of (arm seed, reference seed) pairs where the arm scores "
        "higher (ties count ½), the Mann–Whitney statistic / (n·m); averaged over the strata, each weighing the "
        "same. 0.5 means no tendency either way; it cannot exceed 1 in any stratum, so one stratum with a huge "
        "effect cannot carry it.",
        "**Mean** and **IQM** (the mean of the middle 50%) of the paired difference arm − reference, in points, "
        "pairs by seed within a stratum; each stratum weighs the same.",
        f"**Verdict**: *better*/*worse* when P's interval lies above/below 0.5; *meaningfully* so when it lies "
        f"above {c.meaningful:g} (below {1 - c.meaningful:g}); *equivalent* when the mean difference's "
        f"equivalence interval lies within ±{wording.points(c.min_effect)}; else *inconclusive*. These describe "
        "these studies: the strata are held fixed unless --resample-strata was given.",
        "Each stratum's own verdict is its run's report verdict (sign-flip test, the run's own family) when the "
        "comparison is that report's headline, else the same test computed on these values.",
    ])


def _verdicts(c: Comparison, w: ReportWriter) -> None:
    w.heading(2, "Across strata")
    w.table(aggregate_table(c))
    w.bullets([_sentence(c, r) for _, r in c.aggregate.iterrows()])
    w.figure(af.probability_figure(c), "probability_of_improvement",
             f"P(arm > {md(c.reference)}) over the strata, with its {100 * c.level:.4g}% stratified bootstrap "
             f"interval; solid line: 0.5, dashed: {c.meaningful:g} and {1 - c.meaningful:g}.")


def _sentence(c: Comparison, r: pd.Series) -> str:
    missing = f"; missing from {len(r['missing_strata'])} stratum(s)" if r["missing_strata"] else ""
    return (
        f"{md(r['arm'])} vs {md(c.reference)}: **{r['verdict']}**. P({md(r['arm'])} > {md(c.reference)}) = "
        f"{_p(r['p_improvement'])} {_p_interval(r['p_low'], r['p_high'])} over {r['strata']} strata "
        f"({r['pairs']} paired seeds{missing}); mean {pts(r['mean_diff'])} points "
        f"{interval(r['mean_low'], r['mean_high'])}, IQM {pts(r['iqm_diff'])} "
        f"{interval(r['iqm_low'], r['iqm_high'])}; intervals at {100 * c.level:.4g}%."
    )


def _p(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.2f}"


def _p_interval(low: float, high: float) -> str:
    return "–" if pd.isna(low) or pd.isna(high) else f"[{low:.2f}, {high:.2f}]"


def aggregate_table(c: Comparison) -> Table:
    data = c.aggregate.assign(missing_strata=c.aggregate["missing_strata"].map("; ".join))
    display = pd.DataFrame({
        "arm": data["arm"],
        "strata": data["strata"].astype(str),
        "pairs": data["pairs"].astype(str),
        "P(arm > ref)": data["p_improvement"].map(_p),
        "P interval": [_p_interval(lo, hi) for lo, hi in zip(data["p_low"], data["p_high"], strict=True)],
        "mean diff": data["mean_diff"].map(pts),
        "mean interval": [interval(lo, hi) for lo, hi in zip(data["mean_low"], data["mean_high"], strict=True)],
        "IQM diff": data["iqm_diff"].map(pts),
        "IQM interval": [interval(lo, hi) for lo, hi in zip(data["iqm_low"], data["iqm_high"], strict=True)],
        "equivalence interval": [interval(lo, hi) for lo, hi in
                                 zip(data["equivalence_low"], data["equivalence_high"], strict=True)],
        "verdict": data["verdict"],
    })
    note = (f"Differences in points (arm − {c.reference}); intervals: {100 * c.level:.4g}% stratified bootstrap "
            f"(Bonferroni over {c.family_size} arm(s)); equivalence interval at {100 * c.equivalence_level:.4g}%.")
    return Table("across_strata", f"Each arm vs {c.reference} across strata", data, display, note)


def _strata(c: Comparison, w: ReportWriter) -> None:
    w.heading(2, "Stratum by stratum")
    w.text("Where each aggregate comes from: every stratum's mean paired difference with its bootstrap interval "
           "(same replicates and level), and the stratum's own verdict from its run.")
    metric = metric_text(c)
    w.figure(af.forest_figure(c, metric), "forest",
             f"Mean difference arm − {md(c.reference)} per stratum (points, {100 * c.level:.4g}% bootstrap interval); "
             f"at the bottom the aggregate mean (diamond) and IQM (open square); grey band: "
             f"±{wording.points(c.min_effect)}.")
    w.table(stratum_table(c))


def stratum_table(c: Comparison) -> Table:
    data = c.per_stratum
    display = pd.DataFrame({
        "arm": data["arm"],
        "stratum": data["stratum"],
        "stage": data["stage"],
        "n": data["n"].astype(str),
        "P(arm > ref)": data["p_improvement"].map(_p),
        "P interval": [_p_interval(lo, hi) for lo, hi in zip(data["p_low"], data["p_high"], strict=True)],
        "mean diff": data["mean_diff"].map(pts),
        "bootstrap interval": [interval(lo, hi) for lo, hi in zip(data["boot_low"], data["boot_high"], strict=True)],
        "sign-flip interval": [_signflip(r) for _, r in data.iterrows()],
        "own verdict": [f"{v} ({s})" if s else v for v, s in zip(data["verdict"], data["verdict_source"],
                                                                 strict=True)],
    })
    note = ("n: paired seeds; sign-flip interval: the stratum's own test inverted, at its attainable level (none "
            "below 6 seeds); own verdict: (report) from its run's report, (computed) the same test on these values.")
    return Table("strata", "Each arm vs the reference, stratum by stratum", data, display, note)


def _signflip(r: pd.Series) -> str:
    if pd.isna(r["ci_level"]):
        return "–"
    return f"{interval(r['ci_low'], r['ci_high'])} at {100 * r['ci_level']:.3g}%"


def _profiles(c: Comparison, w: ReportWriter) -> None:
    w.heading(2, "Performance profiles")
    w.figure(af.profile_figure(c, metric_text(c)), "performance_profiles",
             "Share of runs (strata × seeds, each stratum weighing the same) whose accuracy exceeds τ, per arm, "
             f"with a pointwise {100 * c.profiles.get('level', 0.95):.3g}% band from the same stratified bootstrap.")


def _missing(c: Comparison, w: ReportWriter) -> None:
    if c.missing.empty:
        return
    w.heading(2, "Arms missing from strata")
    w.text("These arms have no comparison in these strata; their aggregates cover only the strata they have.")
    w.table(Table("missing", "Arms without a comparison in a stratum", c.missing, c.missing.astype(str)))


def _runs(c: Comparison, w: ReportWriter) -> None:
    w.heading(2, "Runs")
    rows = []
    for s in c.studies:
        p = s.provenance
        rows.append({
            "study": s.label, "run_dir": p["run_dir"],
            "levels": ", ".join(f"{100 * lv:g}%" for lv in s.analysis.levels),
            "metric": s.metric, "checkpoint": s.checkpoint, "threat_model": threat_text(s.threat_model()),
            "reference": s.analysis.reference or "", "git_commit": p["git_commit"] or "unknown",
            "study_yaml_sha256": p["study_yaml_sha256"] or "no study.yaml",
            "resolved_study_sha256": p["resolved_study_sha256"] or "no manifest",
        })  # fmt: skip
    data = pd.DataFrame(rows)
    display = data.assign(**{column: data[column].map(_short) for column in HASHES})
    w.table(Table("runs", "The runs compared", data, display, "Hashes shortened here; compare.json and "
                  "runs.csv hold them whole (SHA-256)."))


HASHES = ("git_commit", "study_yaml_sha256", "resolved_study_sha256")


def _short(value: str) -> str:
    """A hash or commit cut to 12 characters; words ('unknown') as they are."""
    return value[:12] if len(value) >= 40 and all(ch in "0123456789abcdef" for ch in value) else value


SECTIONS = [_header, _reading, _verdicts, _strata, _profiles, _missing, _runs]
