"""`decaylab verdict TABLE.csv --reference ARM`: the report's verdicts for any table of per-seed values.

The table is long: one row per arm and seed (and `--by` group), the metric as a fraction. Every
other arm is compared with the reference, paired by seed, through `analysis.verdicts.verdict_table`
(sign-flip test, its inverted interval, the family adjusted together); one line per comparison is
printed, the verdict first, and `--output` writes every column as strict JSON (NaN → null).
"""

from __future__ import annotations

import sys

from orchestrator.cli import args as a
from orchestrator.errors import UserError

HINT = "the CSV needs one row per arm and seed, e.g. `arm,seed,value` then `awd,0,0.431`"


def add(sub, epilog: str) -> None:
    sp = a.command(sub, "verdict", verdict, "verdicts of arms vs a reference arm from a CSV of per-seed values",
                   epilog)
    sp.add_argument("table", metavar="TABLE", help="CSV with columns arm, seed and the metric (accuracies as "
                    "fractions: 0.431)")
    sp.add_argument("--reference", required=True, metavar="ARM", help="the arm every other arm is compared with")
    sp.add_argument("--metric", default="value", metavar="COLUMN", help="the column holding the values "
                    "(default: value)")
    sp.add_argument("--min-effect", type=float, default=0.01, metavar="FRACTION", help="smallest difference of "
                    "interest, a fraction (default 0.01: one point); power, seeds needed and equivalence use it")
    sp.add_argument("--alpha", type=float, default=0.05, metavar="FRACTION", help="family-wise level (default 0.05)")
    sp.add_argument("--adjust", choices=["maxT", "holm", "none"], default="maxT",
                    help="adjustment across all comparisons of the table (default maxT)")
    sp.add_argument("--by", nargs="+", action="extend", default=[], metavar="COLUMN",
                    help="columns whose values are separate groups (e.g. a noise level); every group's comparisons "
                    "join one family")
    sp.add_argument("-o", "--output", metavar="FILE", help="also write every column of every comparison as JSON "
                    "to FILE (e.g. verdicts.json)")
    a.alias(sp, "--out", "output")


def verdict(args) -> int:
    import json

    from analysis import verdicts

    table = read_table(args.table)
    try:
        result = verdicts.verdict_table(table, reference=args.reference, alpha=args.alpha, min_effect=args.min_effect,
                                        adjust=args.adjust, by=args.by, value=args.metric)
    except verdicts.VerdictInputError as e:
        raise UserError(args.table, str(e), HINT) from None
    print(text_table(result, args.by, args.metric))
    for note in result.attrs.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    if args.output:
        rows = json.loads(result.to_json(orient="records", double_precision=15))  # NaN and <NA> become null
        document = {"table": args.table, "metric": args.metric, "reference": args.reference, "alpha": args.alpha,
                    "min_effect": args.min_effect, "adjust": args.adjust, "by": args.by,
                    "notes": result.attrs.get("notes", []), "comparisons": rows}
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1, ensure_ascii=False, allow_nan=False)
            f.write("\n")
    return 0


def read_table(path: str):
    """The CSV as a frame, arm names as text; a file that cannot be read as CSV is a UserError."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(path, "no such file", "give the path of a CSV file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UserError(path, f"cannot be read as CSV ({type(e).__name__}: {str(e)[:200]})", HINT) from None
    if "arm" in table.columns:
        table["arm"] = table["arm"].astype("string")  # an arm named 1 is the arm "1" of --reference 1
    return table


def text_table(result, by: list[str], metric: str) -> str:
    """One aligned line per comparison: verdict, group, arm, then the numbers (differences in the metric's units)."""
    import math

    import pandas as pd

    def number(x: float, sign: bool = True) -> str:
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:{'+' if sign else ''}.4g}"

    header = ["verdict", *by, "arm", "n", "mean diff", "HL", "interval", "level", "p", "adj. p", "W/T/L",
              "power", "seeds needed"]
    rows = [header]
    for _, r in result.iterrows():
        span = "–" if math.isnan(r["ci_low"]) else f"[{number(r['ci_low'])}, {number(r['ci_high'])}]"
        level = "–" if math.isnan(r["ci_level"]) else f"{100 * r['ci_level']:.3g}%"
        needed = "–" if pd.isna(r["seeds_needed"]) else str(r["seeds_needed"])
        rows.append([r["verdict"], *(str(r[c]) for c in by), str(r["arm"]), str(r["n"]), number(r["mean_diff"]),
                     number(r["hodges_lehmann"]), span, level, number(r["p_value"], False),
                     number(r["p_adjusted"], False), f"{r['wins']}/{r['ties']}/{r['losses']}",
                     number(r["power_at_min_effect"], False), needed])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    reference = result["reference"].iloc[0] if len(result) else "?"
    return "\n".join([f"{metric}: arm − {reference}, paired by seed", *lines])
