"""`write_report`: a run directory -> `report.md` with its figures/ and tables/ (DESIGN.md §6).

Sections, in order: status line, summary of findings, selection rules, trials, comparison,
LR sensitivity, robust overfitting, diagnostics, then label noise, pruning and sanity checks.
Every analysis is done per label-noise level; with several levels each section has one
subsection per level and file names carry `_noise<percent>`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from matplotlib.figure import Figure

from analysis import checks, compare, displays, extras, overfitting, select, sensitivity
from analysis import figures_epochs as fe
from analysis import figures_lr as fl
from analysis.load import load_run
from analysis.pipeline import Analysis, analyse, at_level
from analysis.plotting import figure_style, save_figure
from analysis.progress import unfinished_table
from analysis.summary import findings
from analysis.tables import INLINE_ROWS, Table, to_markdown, write_table

RULES_MARKER = "Rules (the report repeats them):"


class ReportWriter:
    """Collects Markdown and writes each figure and table next to it as it goes."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.figures_dir, self.tables_dir = out_dir / "figures", out_dir / "tables"
        self.chunks: list[str] = []
        self.files: list[Path] = []
        self._clear_previous()

    def _clear_previous(self) -> None:
        """Remove the outputs of an earlier report, so no stale figure outlives its data."""
        for folder, suffixes in (
            (self.figures_dir, {".png", ".pdf"}),
            (self.tables_dir, {".md", ".csv", ".tex"}),
        ):
            for path in folder.glob("*") if folder.is_dir() else []:
                if path.suffix in suffixes:
                    path.unlink()

    def text(self, markdown: str) -> None:
        self.chunks.append(markdown.rstrip() + "\n")

    def figure(self, fig: Figure | None, name: str, caption: str) -> None:
        if fig is None:
            return
        self.files += save_figure(fig, self.figures_dir, name)
        self.text(f"![{caption}](figures/{name}.png)\n\n*{caption}* ([PDF](figures/{name}.pdf))")

    def table(self, table: Table) -> None:
        self.files += write_table(table, self.tables_dir)
        links = " · ".join(f"[{ext}](tables/{table.name}.{ext})" for ext in ("csv", "tex", "md"))
        note = f"\n\n*{table.note}*" if table.note else ""
        self.text(f"**{table.title}**\n\n{to_markdown(table.display, INLINE_ROWS)}{note}\n\n{links}")

    def write(self) -> Path:
        path = self.out_dir / "report.md"
        path.write_text("\n".join(self.chunks))
        return path


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Analyse `run_dir` and write the report; return the path of `report.md`.

    `out_dir` defaults to `reports/<study name>`. Figures go to `figures/` (PNG and PDF),
    tables to `tables/` (Markdown, CSV with fractions, LaTeX); reruns give identical files.
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path("reports") / run.study
    out.mkdir(parents=True, exist_ok=True)
    a = analyse(run)
    writer = ReportWriter(out)
    with figure_style():
        for section in SECTIONS:
            before = len(writer.chunks)
            section(a, writer)
            if len(writer.chunks) > before:
                print(f"report: {section.__name__.strip('_')} written", file=sys.stderr)
    return writer.write()


def _suffix(a: Analysis, level: float) -> str:
    return "" if len(a.levels) == 1 else f"_noise{100 * level:g}"


def _per_level(a: Analysis, w: ReportWriter, body: Callable[[float, str], None]) -> None:
    """Run `body(level, suffix)` for each level, under a subheading when there are several."""
    for level in a.levels:
        if len(a.levels) > 1:
            w.text(f"### Label noise {100 * level:g}%")
        body(level, _suffix(a, level))


def _rules_of(module: ModuleType) -> str:
    """The bullet list after RULES_MARKER in a module's docstring (the rules' single source)."""
    doc = module.__doc__ or ""
    if RULES_MARKER not in doc:
        return f"See `{module.__name__}`."
    return doc.split(RULES_MARKER, 1)[1].strip()


def _header(a: Analysis, w: ReportWriter) -> None:
    run, progress = a.run, a.progress
    w.text(f"# decaylab report: {run.study}")
    w.text(f"**{progress.line()}**")
    study = run.resolved_study
    train, attack = study.get("train") or {}, (study.get("attack") or {}).get("train") or {}
    facts = [f"run directory `{run.run_dir}`"]
    if run.manifest:
        facts.append(f"git commit `{run.manifest.get('git_commit') or 'unknown'}`")
        finished = run.manifest.get("finished") or "not finished"
        facts.append(f"started {run.manifest.get('started', '?')}, finished {finished}")
    if train:
        facts.append(f"{train.get('epochs', '?')} epochs, {train.get('schedule', '?')} lr schedule")
    if attack and attack.get("kind") == "none":
        facts.append("natural training (no training attack)")
    elif attack:
        facts.append(f"training attack {attack.get('kind', '?')}-{attack.get('steps', '?')}, ε={attack.get('eps')}")
    arms = ", ".join(f"{arm} ({kind})" for arm, kind in a.outcomes[["method", "kind"]].drop_duplicates().values)
    facts.append(f"arms: {arms or 'none yet'}")
    w.text("; ".join(facts) + ".")


def _summary(a: Analysis, w: ReportWriter) -> None:
    w.text("## Summary of findings")
    if a.outcomes.empty:
        w.text("No trial has reported yet: nothing to summarise.")
        return
    if a.progress.partial:
        w.text("*The sweep is partial: these findings cover the trials finished so far.*")
    _per_level(a, w, lambda level, _: w.text("\n".join(f"- {item}" for item in findings(a, level))))


def _rules(a: Analysis, w: ReportWriter) -> None:
    w.text("## How results are selected and summarised")
    for title, module in (("Selection", select), ("LR sensitivity", sensitivity), ("Comparison", compare)):
        w.text(f"**{title}.**\n\n{_rules_of(module)}")


def _trials(a: Analysis, w: ReportWriter) -> None:
    w.text("## Trials")
    counts = ", ".join(f"{n} {status}" for status, n in a.progress.counts.items())
    w.text(f"{a.progress.line()}. By status: {counts}.")
    table = unfinished_table(a.outcomes)
    if table.empty:
        w.text("No trial diverged, failed or is still running.")
        return
    w.table(displays.unfinished(table, "trials_unfinished", "Diverged, failed and running trials"))


def _comparison(a: Analysis, w: ReportWriter) -> None:
    w.text("## Comparison of the best-tuned arms")

    def body(level: float, sfx: str) -> None:
        rows = at_level(a.comparison, level)
        if rows.empty:
            w.text("No arm has an `ok` trial at this level.")
            return
        title = "Best-tuned arms (selected on validation)" + (f", label noise {100 * level:g}%" if sfx else "")
        w.table(displays.comparison(rows, f"comparison{sfx}", title, a.has_autoattack))
        paired = at_level(a.paired, level)
        if paired.empty:
            w.text("No paired comparison: the level needs a fixed and an adaptive arm with common (lr, seed).")
        else:
            w.table(displays.paired(paired, f"paired{sfx}", "Paired-seed comparison vs the reference fixed arm"))

    _per_level(a, w, body)


def _sensitivity(a: Analysis, w: ReportWriter) -> None:
    w.text("## Learning-rate sensitivity")

    def body(level: float, sfx: str) -> None:
        curves, env, best = at_level(a.curves, level), at_level(a.envelope, level), at_level(a.best, level)
        arms = [arm for arm in a.arms if (curves["method"] == arm).any()]
        if best.empty:
            w.text("No finished trial at this level.")
            return
        w.figure(
            fl.lr_summary_figure(curves, env, best, arms),
            f"lr_sensitivity{sfx}",
            "Each arm's best-tuned-per-lr curve (solid) and its best single setting at every lr (dashed).",
        )
        w.figure(
            fl.lr_settings_figure(curves, env, best, arms),
            f"lr_sensitivity_settings{sfx}",
            "One curve per λ / λ_awd, with the best-per-lr envelope (black dashed).",
        )
        w.figure(
            fl.heatmap_figure(curves, arms),
            f"lr_heatmaps{sfx}",
            "λ × lr heatmaps of mean test robust accuracy.",
        )
        w.table(displays.sensitivity(at_level(a.sensitivity, level), f"sensitivity{sfx}", "LR sensitivity per arm"))

    _per_level(a, w, body)


def _overfitting(a: Analysis, w: ReportWriter) -> None:
    w.text("## Robust overfitting")

    def body(level: float, sfx: str) -> None:
        best = at_level(a.best, level)
        if best.empty:
            w.text("No finished trial at this level.")
            return
        w.figure(
            fe.overfitting_figure(at_level(a.epoch_curves, level), at_level(a.drops, level), best, a.arms),
            f"robust_overfitting{sfx}",
            "Validation and test robust accuracy vs epoch of each arm's best-tuned configuration.",
        )
        table = overfitting.overfitting_table(at_level(a.settings, level))
        w.table(displays.configurations(table, best, f"configurations{sfx}", "Best vs last epoch, every setting"))

    _per_level(a, w, body)


def _diagnostics(a: Analysis, w: ReportWriter) -> None:
    w.text("## Diagnostics")
    fixed_lams = sorted(a.outcomes.loc[a.outcomes["kind"] == "fixed", "hp"].unique())

    def body(level: float, sfx: str) -> None:
        best, curves = at_level(a.best, level), at_level(a.epoch_curves, level)
        if best.empty:
            w.text("No finished trial at this level.")
            return
        w.figure(
            fe.lambda_figure(curves, best, fixed_lams),
            f"lambda_trajectory{sfx}",
            "AWD's effective weight decay λ̄ per epoch (band: min..max within the epoch, over seeds).",
        )
        w.figure(fe.norms_figure(curves, best, a.arms), f"norms{sfx}", "Weight and gradient norms vs epoch.")

    _per_level(a, w, body)


def _label_noise(a: Analysis, w: ReportWriter) -> None:
    if not extras.has_label_noise(a.outcomes):
        return
    w.text("## Label noise")
    w.table(displays.label_noise(extras.label_noise_table(a.best), "label_noise", "Best-tuned arms per noise rate"))
    w.figure(
        extras.memorisation_figure(
            a.epoch_curves.merge(a.best[["label_noise", "method", "label"]], on=["label_noise", "method"]),
            a.arms,
        ),
        "label_noise_memorisation",
        "Flipped training labels fitted vs epoch (mean over seeds).",
    )


def _pruning(a: Analysis, w: ReportWriter) -> None:
    if not extras.has_pruning(a.run.evaluations):
        return
    w.text("## Pruning")
    table = extras.pruning_table(a.run.evaluations, a.outcomes, a.best)
    w.table(displays.pruning(table, "pruning", "Accuracy of the best checkpoint vs sparsity"))
    _per_level(
        a,
        w,
        lambda level, sfx: w.figure(
            extras.pruning_figure(at_level(table, level), a.arms),
            f"pruning{sfx}",
            "Clean and PGD accuracy vs sparsity.",
        ),
    )


def _sanity(a: Analysis, w: ReportWriter) -> None:
    w.text("## Sanity checks")
    if a.run.evaluations is None:
        w.text("No `evaluations.parquet`: there are no clean/FGSM/PGD/AutoAttack evaluations to cross-check.")
        return
    warnings = checks.sanity_warnings(a.run.evaluations)
    if not warnings:
        w.text("None raised: AutoAttack ≤ PGD ≤ FGSM ≤ clean on every evaluation row.")
        return
    w.text(f"**{len(warnings)} warning(s)** — an attack weaker than it should be:")
    w.text("\n".join(f"- {message}" for message in warnings))


SECTIONS: list[Callable[[Analysis, ReportWriter], None]] = [
    _header,
    _summary,
    _rules,
    _trials,
    _comparison,
    _sensitivity,
    _overfitting,
    _diagnostics,
    _label_noise,
    _pruning,
    _sanity,
]
