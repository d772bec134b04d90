"""How ``growth`` shows results: rich tables of validation reports, propensity runs,
campaign readouts and run comparisons, on one console for stdout and one for stderr."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Logs and CI are not terminals; keep tables readable there instead of 80 columns wide.
# No markup on stdout: paths, column names and run fields are the user's text, and a "[x]" in
# them must print as it is (styles are given as Text or style= instead).
console = Console(markup=False) if sys.stdout.isatty() else Console(markup=False, width=140)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=140)


def print_report(report) -> None:
    table = Table(title=f"validation (quarantine: {report.quarantine_dir}/)")
    for col in ("table", "input rows", "clean rows", "quarantined", "reasons", "kept, flagged"):
        table.add_column(col, justify="right" if "rows" in col or col == "quarantined" else "left")
    for t in report.tables.values():
        reasons = ", ".join(f"{k}={v:,}" for k, v in t.quarantined.items()) or "-"
        flags = ", ".join(f"{k}={v:,}" for k, v in t.warnings.items()) or "-"
        table.add_row(t.table, f"{t.input_rows:,}", f"{t.clean_rows:,}",
                      f"{t.quarantined_rows:,}", reasons, flags)
    console.print(table)
    for line in report.large_losses():  # loaded all the same: a warning, not an error
        console.print(f"warning: {line}", style="yellow", highlight=False)
    for t in report.tables.values():
        if t.kept_columns:
            console.print(f"{t.table}: columns outside the contract, kept as features: "
                          f"{', '.join(t.kept_columns)}", style="dim")
        if t.ignored_columns:
            console.print(f"{t.table}: ignored columns outside the contract: "
                          f"{', '.join(t.ignored_columns)}", style="dim")


def print_propensity(summary: dict, reports: Path) -> None:
    """The metric table of one propensity run (test set, or validation when there is none)."""
    metrics = summary["metrics"]
    part = "" if "roc_auc" in metrics["lightgbm"] else "val_"
    table = Table(title=f"{summary['model']} v{summary['version']}, data to "
                        f"{summary['data_end']}: {'test' if not part else 'validation'} set")
    # lift and capture are named after the config's top_fraction (lift_at_10pct at 0.1)
    lift = next(k.removeprefix(part) for k in metrics["lightgbm"]
                if k.startswith(part + "lift_at_"))
    pct = lift.removeprefix("lift_at_").removesuffix("pct")
    keys = ("roc_auc", "pr_auc", "brier", "ece", lift, lift.replace("lift", "capture"))
    for col in ("system", "ROC-AUC", "PR-AUC", "Brier", "ECE", f"lift@{pct}%", f"capture@{pct}%"):
        table.add_column(col)
    for name, m in metrics.items():
        table.add_row(name, *(f"{m[part + k]:.4f}" for k in keys))
    console.print(table)
    console.print(f"gate: {summary['promotion']}", highlight=False)
    console.print(f"trained in {summary['train_seconds']:.0f} s (best iteration "
                  f"{summary['best_iteration']}); report in {reports / summary['model']}")
    data = summary.get("data", {})
    if data.get("no_test_set"):
        console.print(f"note: no test set: {data['no_test_set']}; the table is the "
                      "validation fold's", highlight=False)
    if data.get("cut_short_test_campaigns"):
        console.print(f"note: test campaigns {data['cut_short_test_campaigns']} run past the "
                      "end of the data; their labels count only the redemptions it holds",
                      highlight=False)
    if data.get("after_data_campaigns"):
        console.print(f"note: campaigns {data['after_data_campaigns']} start after the data "
                      "ends and are left out of the test set (no outcome yet)", highlight=False)


def print_readout(r) -> None:
    """What was measured, the table, any warning, the figures a marketer can quote with a
    verdict in words, and notes on what the file could not tell."""
    what = ("bought anything" if r.outcome == "visit" else f"redeemed a coupon of campaign "
            f"{r.campaign_id}")
    console.print(f"outcome: {what} between {r.start} and {r.end - timedelta(days=1)} "
                  f"({(r.end - r.start).days} days)", highlight=False)
    table = Table(title=f"{r.audience}: treated against control")
    for col in ("group", "households", "responders", "rate", "spend per household"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, g in (("treated", r.treated), ("control", r.control)):
        table.add_row(name, f"{g.households:,}", f"{g.responders:,}", f"{g.rate:.1%}",
                      f"{g.spend_per_household:,.2f}")
    console.print(table)
    for warning in r.warnings:
        console.print(f"WARNING: {warning}", style="bold red", highlight=False)
    lo, hi = r.uplift_ci95
    relative = (f", relative {r.relative_uplift:+.1%}" if r.relative_uplift is not None else "")
    console.print(f"uplift {r.uplift * 100:+.1f} points (95% CI {lo * 100:+.1f} to "
                  f"{hi * 100:+.1f}){relative}, p = {r.p_value:.3g}", highlight=False)
    console.print(f"verdict: {r.verdict}", style="bold", highlight=False)
    lo, hi = r.incremental_responders_ci95
    console.print(f"incremental responders among the treated: {r.incremental_responders:+,.0f} "
                  f"(95% CI {lo:+,.0f} to {hi:+,.0f})", highlight=False)
    ci = (f" (95% CI {r.spend_uplift_ci95[0]:+,.2f} to {r.spend_uplift_ci95[1]:+,.2f})"
          if r.spend_uplift_ci95 else "")
    console.print(f"spend uplift per household: {r.spend_uplift:+,.2f}{ci}", highlight=False)
    for note in r.notes:
        console.print(f"note: {note}", highlight=False)
    if r.by_decile:
        console.print(_decile_table(r.by_decile))


def _decile_table(bands) -> Table:
    """The readout per score decile (1 = highest scores)."""
    table = Table(title="by score decile (1 = highest; each interval on its own)")
    for col in ("decile", "mean score", "treated", "rate", "control", "rate", "uplift (95% CI)"):
        table.add_column(col, justify="right")
    for b in bands:
        uplift = "n/a (a group is empty)"
        if b.uplift is not None:
            lo, hi = b.uplift_ci95
            uplift = f"{b.uplift * 100:+.1f} ({lo * 100:+.1f} to {hi * 100:+.1f})"
        table.add_row(str(b.decile), "" if b.mean_score is None else f"{b.mean_score:.3f}",
                      f"{b.treated.households:,}", f"{b.treated.rate:.1%}",
                      f"{b.control.households:,}", f"{b.control.rate:.1%}", uplift)
    return table


def _cell(value, decimals: int = 4) -> str:
    """A metric with 4 (or ``decimals``) decimals, a logged parameter (text) as it reads
    best, "-" if missing."""
    if value is None or value != value:  # None or NaN
        return "-"
    if isinstance(value, float):
        return f"{value:.{decimals}f}" if abs(value) < 10 else f"{value:.1f}"
    try:
        return f"{float(value):.4g}" if any(c in str(value) for c in ".e") else str(value)
    except ValueError:
        return str(value)


def _seconds(value) -> str:
    """A duration in one format whatever its size (7.2 and 174.1, not 7.2281 and 174.1)."""
    return _cell(value) if _cell(value) == "-" else f"{float(value):.1f}"


def print_comparison(model: str, frame, cols) -> None:
    """One rich table per data source (figures on different data do not compare; the gate
    does not compare them either), newest runs first."""
    if frame.empty:
        console.print(f"{model}: no finished run has evaluated a model yet")
        return
    sources = frame["data_source"].fillna("an unrecorded source")
    for source in sources.unique():
        _comparison_table(f"{model} on {source}", frame[sources == source], cols)


def _comparison_table(title: str, frame, cols) -> None:
    """Run fields on each run's first row only, our systems in bold. Each column is exactly
    as wide as its widest value (headings wrap), so no figure is cut."""
    from training.compare import label

    heads = ["run", "version", "data ends", *(label(n) for n in (*cols.params, *cols.run_metrics)),
             "system", *(label(n) for n in cols.metrics)]
    run_keys = [*(f"param.{p}" for p in cols.params), *(f"run.{m}" for m in cols.run_metrics)]
    sections: list[list[list[str]]] = []
    for run_id, rows in frame.groupby("run_id", sort=False):
        section = []
        for j, r in enumerate(rows.to_dict("records")):
            version = "-" if _cell(r["version"]) == "-" else (
                f"v{int(r['version'])}{' *' if r['champion'] else ''}")
            run_cells = [run_id[:8], version, _cell(r["data_end"]),
                         *(_seconds(r[k]) if k.endswith("_seconds") else _cell(r[k])
                           for k in run_keys)]
            if j > 0:  # the run's fields once, on its first row
                run_cells = [""] * len(run_cells)
            section.append([*run_cells, r["system"],
                            *(_cell(r[m], 6 if m in cols.precise else 4) for m in cols.metrics)])
        sections.append(section)
    rows = [row for section in sections for row in section]
    table = Table(title=f"{title} (* = @champion)", box=box.SIMPLE_HEAD, collapse_padding=True,
                  pad_edge=False)
    system_at = heads.index("system")
    for i, head in enumerate(heads):
        width = max([len(row[i]) for row in rows] + [len(word) for word in head.split()])
        table.add_column(head, width=width,
                         justify="left" if i < 3 or i == system_at else "right")
    for section in sections:
        for row in section:
            system = row[system_at]
            if system in cols.ours:
                row = [*row[:system_at], Text(system, style="bold"), *row[system_at + 1:]]
            table.add_row(*row)
        table.add_section()
    console.print(table)
