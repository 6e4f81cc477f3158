"""`write_report`: a run directory -> report.md, report.html and summary.json, with figures/ and tables/.

Sections, in order: header, summary of findings, how to read the report, trials, comparison
(the selected configurations, the headline and LR tests, the secondary comparisons), the Optuna
tuning stage (for such a run), LR sensitivity, tuning budget, hyperparameter importance, clean vs
robust, robust overfitting, diagnostics, then label noise, pruning and sanity checks.
Every analysis is done per label-noise level; with several levels each section has one
subsection per level and file names carry `_noise<percent>`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis import compare, displays, extras, output, plotting, published, sanity, summary_json, wording
from analysis import figures_epochs as fe
from analysis import figures_lr as fl
from analysis import figures_tuning as ft
from analysis.document import Block, Bullets, FigureBlock, Heading, Para, TableBlock, to_html, to_markdown_text
from analysis.findings import examples_text, findings, metric_name, single_lr
from analysis.load import load_run
from analysis.pipeline import Analysis, analyse, at_level
from analysis.plotting import figure_style, save_figure
from analysis.progress import unfinished_table
from analysis.rules import RULES
from analysis.tables import Table, write_table
from analysis.text import md, md_code, shown

MAX_REASON = 400  # characters of an error message shown in place of a failed section


class ReportWriter:
    """Collects the report's blocks and writes each figure and table next to it as it goes."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.figures_dir, self.tables_dir = out_dir / "figures", out_dir / "tables"
        self.blocks: list[Block] = []
        self.files: list[Path] = []

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(Heading(level, text))

    def text(self, markdown: str) -> None:
        self.blocks.append(Para(markdown.rstrip()))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(Bullets(items))

    def figure(self, fig: Figure | None, name: str, caption: str) -> None:
        if fig is None:
            return
        paths = save_figure(fig, self.figures_dir, name)
        self.files += paths
        self.blocks.append(FigureBlock(name, caption, paths[0]))

    def table(self, table: Table) -> None:
        self.files += write_table(table, self.tables_dir)
        self.blocks.append(TableBlock(table))

    def section(self, build: Callable[[Analysis, ReportWriter], None], a: Analysis) -> bool:
        """Add one section; True if it wrote anything. If it fails, a note naming the error takes its place.

        What the failed section wrote is taken back (its figure and table files too) except its heading,
        so the reader sees which section is missing and why. An OutputError is not the section's
        fault: it stops the report.
        """
        blocks, files = len(self.blocks), len(self.files)
        try:
            build(a, self)
        except output.OutputError:
            raise
        except Exception as error:  # any failure inside one section: reported in its place, see write_report
            self._replace_with_note(build, blocks, files, error)
            return False
        return len(self.blocks) > blocks

    def _replace_with_note(self, build: Callable, blocks: int, files: int, error: Exception) -> None:
        added = self.blocks[blocks:]
        heading = added[0] if added and isinstance(added[0], Heading) else Heading(2, md(build.__name__.strip("_")))
        reason = shown(f"{type(error).__name__}: {error}")
        if len(reason) > MAX_REASON:
            reason = reason[: MAX_REASON - 1] + "…"
        for path in self.files[files:]:
            path.unlink(missing_ok=True)
        del self.blocks[blocks:], self.files[files:]
        self.blocks.append(heading)
        self.text(f"*This section could not be produced: {md(reason)}*")
        print(f"report: section '{heading.text}' failed: {reason}; the report says so in its place", file=sys.stderr)

    def write(self, a: Analysis) -> Path:
        """Write report.md, report.html and summary.json, each atomically, then the record of every file."""
        # All three are made before any is written: a failure while making one leaves none of them written.
        contents = {
            "report.md": to_markdown_text(self.blocks),
            "report.html": to_html(self.blocks, f"decaylab report: {a.run.study}"),
            "summary.json": summary_json.dumps(a),
        }
        paths = [output.write_atomic(self.out_dir / name, text) for name, text in contents.items()]
        self.files += paths
        output.record(self.out_dir, self.files)
        return paths[0]


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Analyse `run_dir` and write the report; return the path of `report.md`.

    `out_dir` defaults to `reports/<study name>`. It must be new, empty or hold an earlier report
    (whose files are replaced); a directory holding other files is refused unless `force`, and
    even then no file the report did not write is removed. Figures go to `figures/` (PNG and
    PDF), tables to `tables/` (Markdown, CSV with fractions, LaTeX); reruns give identical files.

    A section that fails (odd data in a run directory, or a bug in one analysis) does not stop the
    report: its place holds a short note "This section could not be produced: <error>", the same
    line goes to stderr, and every other section is written. The sections are independent views of
    one analysis, so the rest of the report stays right, and a user with a partial or damaged run
    still gets every section that could be made instead of a traceback and no report.
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path("reports") / run.safe_study_name()
    output.prepare(out, force)
    a = analyse(run)
    writer = ReportWriter(out)
    with figure_style():
        for section in SECTIONS:
            if writer.section(section, a):
                print(f"report: {section.__name__.strip('_')} written", file=sys.stderr)
    return writer.write(a)


def _suffix(a: Analysis, level: float) -> str:
    return "" if len(a.levels) == 1 else f"_noise{100 * level:g}"


def _per_level(a: Analysis, w: ReportWriter, body: Callable[[float, str], None]) -> None:
    """Run `body(level, suffix)` for each level, under a subheading when there are several."""
    for level in a.levels:
        if len(a.levels) > 1:
            w.heading(3, f"Label noise {100 * level:g}%")
        body(level, _suffix(a, level))


def _colors(a: Analysis) -> dict[str, str]:
    return plotting.arm_colors(a.run.method_order)


def _header(a: Analysis, w: ReportWriter) -> None:
    run = a.run
    w.heading(1, f"decaylab report: {md(run.study)}")
    w.text(f"**{a.progress.line()}**")
    description = run.study_field("description", default="")
    if str(description).strip():
        w.text(f"*Study description:* {md(description)}")
    w.bullets(_facts(a))


def _facts(a: Analysis) -> list[str]:
    run = a.run
    facts = [f"Run directory: {md_code(run.run_dir)}"]
    if run.manifest:
        facts.append(f"git commit: {md_code(run.manifest.get('git_commit') or 'unknown')}")
        started, finished = run.manifest.get("started"), run.manifest.get("finished")
        ended = f"finished {md(finished)}" if finished else "not finished (still running, or interrupted)"
        facts.append(f"Started {md(started or 'at an unknown time')}; {ended}.")
    epochs = run.study_field("train", "epochs")
    if epochs is not None:
        facts.append(f"{int(epochs)} epochs, {md(run.study_field('train', 'schedule', default='?'))} lr schedule.")
    attack = run.study_field("attack", "train", default={})
    if isinstance(attack, dict) and attack.get("kind") == "none":
        facts.append("Natural training (no training attack).")
    elif isinstance(attack, dict) and attack:
        facts.append(
            f"Training attack: {md(attack.get('kind', '?'))}-{md(attack.get('steps', '?'))}, "
            f"ε = {md(attack.get('eps'))}."
        )
    facts.append(f"Headline metric: {metric_name(a)} of the final evaluation (fp32) on {examples_text(a)}.")
    facts.append(_validation_labels(a))
    arms = ", ".join(f"{md(arm)} ({md(kind)})" for arm, kind in _arm_kinds(a))
    reference = {md(r) for r in a.references.values() if r}
    facts.append(
        f"Arms, in study order: {arms or 'none yet'}; reference arm: {', '.join(sorted(reference)) or 'none'}."
    )
    facts.append(_verdict_facts(a))
    return facts


def _verdict_facts(a: Analysis) -> str:
    """The verdicts' settings and which stage the headline rests on."""
    s = a.settings
    seeds = sorted({seed for seeds in a.tuning_seeds.values() for seed in seeds})
    stages = set(a.headline["stage"])
    if compare.CONFIRM in stages:
        varied = "seeds and data splits" if s.vary_split else "seeds only"
        stage = f"confirmation on fresh seeds ({varied} varied)"
        if compare.CROSS_FIT in stages:
            stage += "; arms without confirmation trials: exploratory, cross-fitted over the tuning seeds"
    else:
        stage = "exploratory, cross-fitted over the tuning seeds (no confirmation trials)"
    search = "an Optuna stage (no grid statistics)" if a.is_optuna else "a grid"
    return (
        f"Tuning seeds: {', '.join(map(str, seeds)) or 'none'}, on {search}. Headline: {stage}. Verdicts at "
        f"family-wise α = {s.alpha:g}, smallest effect of interest ±{wording.points(s.min_effect)}, adjustment "
        f"{wording.ADJUSTMENTS.get(s.adjust, s.adjust)}."
    )


def _arm_kinds(a: Analysis) -> list[tuple[str, str]]:
    kinds = a.outcomes.drop_duplicates("method").set_index("method")["kind"]
    return [(arm, str(kinds[arm])) for arm in a.arms]


def _validation_labels(a: Analysis) -> str:
    """Which labels selection saw: noisy like training (what a user has), or clean (an oracle)."""
    mode = a.run.study_field("data", "val_label_noise")
    noisy = bool((a.outcomes["label_noise"] > 0).any())
    if mode == "clean":
        text = (
            "Validation labels: **clean** (an oracle: selection saw labels a real user with noisy data would not have)."
        )
    elif mode == "same":
        text = (
            "Validation labels: **same** as training (the validation split carries label noise at the training "
            "rate, as a real user's would)."
        )
    else:
        text = "Validation labels: not recorded in the manifest."
    return text + ("" if noisy else " No label noise in this study, so the choice does not matter here.")


def _summary(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Summary of findings")
    if a.outcomes.empty:
        w.text("No trial has reported yet: nothing to summarise.")
        return
    if a.progress.partial:
        w.text("*The sweep is partial: these findings cover the trials finished so far.*")
    _per_level(a, w, lambda level, _: w.bullets(findings(a, level)))


def _rules(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "How to read this report")
    for title, items in RULES:
        w.text(f"**{title}**")
        w.bullets(items)


def _trials(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Trials")
    counts = ", ".join(f"{n} {status}" for status, n in a.progress.counts.items())
    w.text(f"{a.progress.line()}. By status: {counts}.")
    table = unfinished_table(a.outcomes)
    if table.empty:
        w.text("No trial diverged, failed or is still running, and every finished trial has its final evaluation.")
        return
    w.table(
        displays.unfinished(
            table, "trials_unfinished", "Trials that diverged, failed, are running or lack a final evaluation"
        )
    )


def _comparison(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Comparison of the selected configurations")
    metric = metric_name(a)

    def body(level: float, sfx: str) -> None:
        noise = f", label noise {100 * level:g}%" if sfx else ""
        left = at_level(a.left_out, level)
        if len(left):
            w.text("**Selection is partial**: these configurations were left out, not all their seeds having finished.")
            w.table(displays.left_out(left, f"selection_left_out{sfx}", f"Configurations left out of selection{noise}"))
        rows = at_level(a.best, level)
        if rows.empty:
            w.text("No arm has an eligible configuration at this level.")
            return
        rows = rows.assign(is_reference=rows["method"].eq(a.references.get(level)))
        title = f"Selected configuration of each arm{noise}, on the tuning seeds that chose it (a description)"
        w.table(displays.comparison(rows, f"comparison{sfx}", title, a.has_autoattack, metric))
        headline = at_level(a.headline, level)
        if headline.empty:
            w.text("No test: the level needs a reference arm and another arm with an eligible configuration.")
            return
        w.heading(3, "Headline test" + noise)
        w.text(_headline_intro(a, headline))
        title = "Each arm vs the reference, paired by seed"
        w.table(displays.tests(headline, f"headline_test{sfx}", title, _test_note(a, "headline")))
        w.bullets(
            [
                f"{wording.verdict_sentence(r, a.settings)} {wording.testset_text(r, a.settings.vary_split)}"
                for _, r in headline.iterrows()
            ]
        )
        _lr_test(a, w, level, sfx, noise)

    _per_level(a, w, body)


def _headline_intro(a: Analysis, headline: pd.DataFrame) -> str:
    parts = []
    if (headline["stage"] == compare.CONFIRM).any():
        varied = "seeds and data splits" if a.settings.vary_split else "seeds only"
        parts.append(
            "**Confirmation**: each arm's configuration, selected on the tuning seeds (validation only), retrained on "
            f"fresh seeds the selection never saw ({varied} varied), against the reference's, paired by seed."
        )
    if (headline["stage"] == compare.CROSS_FIT).any():
        parts.append(
            "**Exploratory, cross-fitted**: for each tuning seed, every arm's configuration is chosen on the other "
            "tuning seeds (validation only) and judged on the held-out one, so no seed both chooses and judges; "
            "exploratory because no fresh seeds confirm it."
        )
    return " ".join(parts)


def _lr_test(a: Analysis, w: ReportWriter, level: float, sfx: str, noise: str) -> None:
    w.heading(3, "Across the lr grid (LR test)" + noise)
    if a.is_optuna:
        w.text("Not computed for an Optuna stage: its configurations do not share a grid of lrs.")
        return
    if (only := single_lr(a, level)) is not None:
        w.text(f"One lr only ({only:g}): robustness to the lr cannot be assessed, so there is no such test.")
        return
    w.table(
        displays.tests(
            at_level(a.lr_robustness, level),
            f"lr_robustness_test{sfx}",
            "Per seed, the peak-normalised accuracy over the lr grid, arm vs reference",
            _test_note(a, "lr"),
        )
    )
    rows = at_level(a.secondary, level)
    if len(rows):
        w.heading(3, "Secondary comparisons of the lr curves" + noise)
        note = (
            "Per seed, arm − reference, paired by seed with the same sign-flip test; these comparisons form their own "
            f"family ({int(rows['family_size'].iloc[0])} comparisons, {_adjust_name(a)}), separate from the headline "
            "and LR tests, and are exploratory (tuning seeds). Higher spread = more sensitive to the lr."
        )
        w.table(displays.secondary(rows, f"secondary{sfx}", "Secondary comparisons (exploratory)", note))


def _adjust_name(a: Analysis) -> str:
    return {"maxT": "max-T adjusted", "holm": "Holm adjusted"}.get(a.settings.adjust, "not adjusted")


def _test_note(a: Analysis, which: str) -> str:
    what = (
        f"d = arm − reference in {metric_name(a)} of the final evaluation at the best checkpoint, one pair per seed"
        if which == "headline"
        else "d = arm − reference of each seed's peak-normalised accuracy: the mean over the lr grid of (the "
        f"best-per-lr {metric_name(a)} − the seed's best over the grid), best per lr chosen on the other seeds"
    )
    s = a.settings
    return (
        f"{what}; diverged seeds count 0; two-sided sign-flip p (exact up to 20 seeds); the interval is that test "
        "inverted, at its attainable level (none below 6 seeds); Hodges–Lehmann = median of the pairwise means; "
        f"adjusted p over the whole family ({_adjust_name(a)}); verdict at family-wise α = {s.alpha:g}, equivalence "
        f"within ±{wording.points(s.min_effect)}; power and seeds needed for power 0.8 at "
        f"{wording.points(s.min_effect)} with a conservative sd (the upper 90% limit), never at the observed "
        "difference."
    )


def _sensitivity(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Learning-rate sensitivity")
    if a.is_optuna:
        w.text("Not computed for an Optuna stage: its configurations do not share a grid of lrs.")
        return
    metric, colors = metric_name(a), _colors(a)

    def body(level: float, sfx: str) -> None:
        curves, env, best = at_level(a.curves, level), at_level(a.envelope, level), at_level(a.best, level)
        if best.empty:
            w.text("No eligible configuration at this level.")
            return
        if (only := single_lr(a, level)) is not None:
            w.text(f"One lr only ({only:g}): sensitivity to the lr needs at least two values in `lr`.")
            return
        arms = [arm for arm in a.arms if (curves["method"] == arm).any()]
        w.figure(
            fl.lr_summary_figure(curves, env, best, arms, colors, metric),
            f"lr_sensitivity{sfx}",
            "Final-evaluation accuracy vs peak learning rate: each arm's best per lr (solid, 95% band over "
            "seeds) and its selected setting held at every lr (dashed); x = a diverged seed, counted 0.",
        )
        w.figure(
            fl.lr_settings_figure(curves, env, arms, colors, metric),
            f"lr_sensitivity_settings{sfx}",
            f"{plotting.capital(metric)} vs lr, one curve per setting (mean over seeds; dotted: incomplete), "
            "with the best-per-lr curve (grey dashed).",
        )
        w.figure(
            fl.heatmap_figure(curves, arms, metric),
            f"lr_heatmaps{sfx}",
            f"Setting × lr: mean {metric} over seeds (× = a seed diverged, counted 0; grey = no finished seed). "
            f"The colour scale spans at least {fl.MIN_COLOR_SPAN:g} points.",
        )
        w.table(displays.sensitivity(at_level(a.sensitivity, level), f"sensitivity{sfx}", "LR sensitivity per arm"))

    _per_level(a, w, body)


def _budget(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Tuning budget")
    if a.is_optuna:
        w.text(
            "Not computed for an Optuna stage: its sampler does not draw configurations uniformly, and early "
            "stopping leaves only the survivors (see Tuning stage)."
        )
        return
    w.text(
        "A *configuration* is one setting of an arm's hyperparameters at one learning rate, its seeds averaged. "
        "Treating the grid as a uniform sample of configurations, the curve is the expected test accuracy of the "
        "validation-best of n configurations drawn without replacement (Dodge et al. 2019; Tang et al. 2020); "
        "configurations tied on validation count equally. The band resamples the seeds (the same draw for every "
        "arm) and recomputes the choice; the practitioner spread is the 10th–90th percentile of what one person "
        "trying n configurations gets."
    )
    metric, colors = metric_name(a), _colors(a)

    def body(level: float, sfx: str) -> None:
        curves = at_level(a.budget, level)
        if curves.empty:
            w.text("No eligible configuration with a number on every tuning seed at this level.")
            return
        w.figure(
            ft.budget_figure(curves, a.arms, colors, metric),
            f"tuning_budget{sfx}",
            f"Expected {metric} of the validation-best of n configurations (95% band from resampling seeds; "
            "dotted: the 10th–90th percentile of one practitioner's result), by n and by training compute.",
        )
        w.table(
            displays.budget(curves, f"tuning_budget{sfx}", "Expected best accuracy for a budget of n configurations")
        )

    _per_level(a, w, body)


def _tuning_stage(a: Analysis, w: ReportWriter) -> None:
    if not a.is_optuna:
        return
    w.heading(2, "Tuning stage (Optuna)")
    w.text(
        "The best validation score found so far, per arm, in the order trials.parquet lists the configurations "
        "(the result files keep no sampler clock). Configurations stopped early by the scheduler have no score, "
        "are flagged, and are never selected; the grid statistics (lr curves, tuning budget, LR test) are not "
        "computed for such a stage."
    )
    colors = _colors(a)

    def body(level: float, sfx: str) -> None:
        rows = at_level(a.anytime, level)
        if rows.empty:
            w.text("No configuration at this level.")
            return
        w.figure(
            ft.anytime_figure(rows, a.arms, colors),
            f"optuna_best_so_far{sfx}",
            "Best validation score so far vs configurations tried (dots: each configuration's score; × = stopped "
            "early, no score).",
        )
        w.table(displays.anytime(rows, f"optuna_best_so_far{sfx}", "The Optuna stage per arm"))

    _per_level(a, w, body)


def _importance(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Hyperparameter importance")
    w.text(
        "Per arm, Optuna's PED-ANOVA and fANOVA (seed 0) evaluators on the arm's tuning trials: the parameters are "
        "the arm's hyperparameters, the lr and the seed (a parameter no more important than the seed is noise), "
        "the value is the validation score. The importances of an arm sum to 1, so each is a share of that arm's "
        "own variation: read them within an arm (which of its parameters matter), never across arms."
    )
    colors = _colors(a)

    def body(level: float, sfx: str) -> None:
        rows = at_level(a.importances, level)
        notes = [
            f"{md(arm)}: {note}"
            for arm in a.arms
            for key, note in a.importance_notes.items()
            if key[0] == level and key[1] == arm
        ]
        if notes:
            w.bullets(notes)
        if rows.empty:
            w.text("Nothing to show: no arm has enough scored trials with a parameter that varies.")
            return
        w.figure(
            ft.importance_figure(rows, a.arms, colors),
            f"importance{sfx}",
            "Importance of each parameter for the validation score, within each arm (light: PED-ANOVA, dark: "
            "fANOVA).",
        )
        w.table(displays.importances(rows, f"importance{sfx}", "Hyperparameter importance per arm"))

    _per_level(a, w, body)


def _pareto(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Clean vs robust accuracy")
    metric, colors = metric_name(a), _colors(a)

    def body(level: float, sfx: str) -> None:
        points = at_level(a.pareto, level)
        if points.empty:
            w.text("No configuration with a final evaluation at this level.")
            return
        w.figure(
            ft.pareto_figure(points, a.arms, colors, metric),
            f"pareto{sfx}",
            f"Clean accuracy vs {metric} of every configuration (seed means, final evaluation, best checkpoint) "
            "and each arm's Pareto front.",
        )
        w.table(displays.pareto(points, f"pareto{sfx}", "Pareto front per arm", metric))

    _per_level(a, w, body)


def _overfitting(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Robust overfitting")
    colors = _colors(a)

    def body(level: float, sfx: str) -> None:
        best = at_level(a.best, level)
        if best.empty:
            w.text("No finished trial at this level.")
            return
        w.figure(
            fe.overfitting_figure(at_level(a.epoch_curves, level), best, a.arms, colors, at_level(a.drops, level)),
            f"robust_overfitting{sfx}",
            "Robust accuracy (left) and robust cross-entropy (right) per epoch of each arm's best-tuned "
            "configuration: test (per-epoch PGD on `eval.test_examples`, solid, with its 95% t-interval band over "
            "ok seeds), validation (dashed) and training (dotted: the training step's own adversarial examples); "
            "means over ok seeds. Robust overfitting shows as test accuracy falling and test loss rising while "
            "the training curves keep improving.",
        )
        w.table(
            displays.configurations(
                at_level(a.configs, level),
                best,
                f"configurations{sfx}",
                "Every configuration: validation score and final evaluation",
            )
        )

    _per_level(a, w, body)


def _diagnostics(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Diagnostics")
    colors = _colors(a)

    def body(level: float, sfx: str) -> None:
        best, curves = at_level(a.best, level), at_level(a.epoch_curves, level)
        if best.empty:
            w.text("No finished trial at this level.")
            return
        w.figure(
            fe.lambda_figure(curves, best, a.arms, colors),
            f"lambda_trajectory{sfx}",
            "The decay each arm's best-tuned configuration applies per step, per epoch: one panel per quantity "
            "(a coupled coefficient λ, AWD's λ̄, a decoupled shrink factor are different things and do not share "
            "an axis); band: min..max within each epoch over seeds. Arms without decay, or whose decay is 0 "
            "throughout (λ = 0, softad, reweight), are left out.",
        )
        w.figure(
            fe.norms_figure(curves, best, a.arms, colors),
            f"norms{sfx}",
            "Weight and gradient norms per epoch (mean over ok seeds, 95% band).",
        )

    _per_level(a, w, body)


def _label_noise(a: Analysis, w: ReportWriter) -> None:
    if not extras.has_label_noise(a.outcomes):
        return
    w.heading(2, "Label noise")
    w.text(_validation_labels(a))
    w.table(displays.label_noise(a.best, "label_noise", "Best-tuned arms per noise rate"))
    w.figure(
        extras.memorisation_figure(a.epoch_curves, a.best, a.arms, _colors(a)),
        "label_noise_memorisation",
        "Flipped training labels fitted per epoch (mean over ok seeds, 95% band).",
    )


def _pruning(a: Analysis, w: ReportWriter) -> None:
    if not extras.has_pruning(a.run.evaluations):
        return
    w.heading(2, "Pruning")
    metric = metric_name(a)
    pruning = a.run.study_field("eval", "pruning", default={}) or {}
    scope = pruning.get("scope", "global")  # a run recorded before the option pruned globally
    w.text({"layer": "Magnitude pruning per layer (`eval.pruning.scope: layer`): every convolution and linear "
                     "weight loses the same fraction of its own smallest weights; no fine-tuning.",
            "global": "Global magnitude pruning (`eval.pruning.scope: global`): one magnitude ranking over every "
                      "convolution and linear weight, so layers whose scale BatchNorm makes arbitrary — the scale "
                      "the decay rules change — lose different fractions; no fine-tuning."}.get(
        scope, f"Pruning scope: {md(str(scope))}."))
    table = extras.pruning_table(a.run.evaluations, a.tune, a.best, a.metric)
    w.table(displays.pruning(table, "pruning", "Accuracy of the best checkpoint vs sparsity", metric))
    _per_level(
        a,
        w,
        lambda level, sfx: w.figure(
            extras.pruning_figure(at_level(table, level), a.arms, _colors(a), metric),
            f"pruning{sfx}",
            f"Clean accuracy and {metric} vs sparsity (mean over seeds, 95% band).",
        ),
    )


def _published(a: Analysis, w: ReportWriter) -> None:
    declared = a.run.study_field("reference_results", default=[]) or []
    if not declared:
        return
    w.heading(2, "Beside published results")
    table = published.compare(declared, a.values, a.outcomes, a.best, a.settings.alpha)
    w.text("Each number the study declares (`reference_results`) beside ours: the arm's headline trials read at "
           "the same metric and checkpoint; the difference is ours − published per seed, with the sign-flip "
           "test's interval at its attainable level. The interval covers our seeds only: a published number from one "
           "run carries its own seed-to-seed spread, which it does not include.")
    w.bullets([f"{md(r['source'])} ({md(r['arm'])}, {md(r['metric'])} at the {md(r['checkpoint'])} checkpoint, "
               f"published {100 * r['published']:.2f}%): {published.sentence(r)}" for _, r in table.iterrows()])
    w.table(displays.published(table, "published", "This run beside published results"))


def _sanity(a: Analysis, w: ReportWriter) -> None:
    w.heading(2, "Sanity checks")
    if a.run.evaluations is None:
        w.text("No `evaluations.parquet`: there are no clean/FGSM/PGD/AutoAttack evaluations to cross-check.")
        return
    warnings = sanity.sanity_warnings(a.run.evaluations)
    if not warnings:
        w.text("None raised: AutoAttack ≤ PGD ≤ FGSM ≤ clean on every evaluation row.")
        return
    w.text(f"**{len(warnings)} warning(s)**: an attack weaker than it should be:")
    w.bullets([md(message) for message in warnings])


SECTIONS: list[Callable[[Analysis, ReportWriter], None]] = [
    _header,
    _summary,
    _rules,
    _trials,
    _comparison,
    _published,
    _tuning_stage,
    _sensitivity,
    _budget,
    _importance,
    _pareto,
    _overfitting,
    _diagnostics,
    _label_noise,
    _pruning,
    _sanity,
]
