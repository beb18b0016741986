"""Commands that use a finished run: ``carenet simulate`` (a what-if cascade), ``carenet
plan`` (the care plan for a budget) and ``carenet explain`` (why one customer ranks where it
does). Each calls the run's one implementation in :mod:`carenet.run`, as the API and views do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from carenet.cli.options import split_list
from carenet.cli.ui import console, friendly_errors, progress_bar
from carenet.errors import InvalidInputError, RunNotFoundError


def _ids_arg(text: str | None, file: Path | None, what: str) -> list[str]:
    ids = split_list(text) or []
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise InvalidInputError(f"no such {what} file", file=file) from None
        ids += [line.split(",")[0].strip() for line in lines if line.strip()]
    return ids


@friendly_errors
def simulate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `carenet analyze` (its graph and influence settings are used).", show_default=False)],
    seeds: Annotated[str | None, typer.Option("--seeds", "-s", help="Comma list of customer ids that start the cascade.")] = None,
    seeds_file: Annotated[Path | None, typer.Option(help="File with one seed customer id a line.")] = None,
    protected: Annotated[str | None, typer.Option("--protected", "-p", help="Comma list of customer ids who never activate (e.g. contacted by care).")] = None,
    protected_file: Annotated[Path | None, typer.Option(help="File with one protected customer id a line.")] = None,
    model: Annotated[str, typer.Option(help="ic, lt or sir.")] = "ic",
    runs: Annotated[int, typer.Option(help="Number of simulations.")] = 10_000,
    recovery: Annotated[float | None, typer.Option(help="SIR: per-step recovery probability (default: the run's, 0.5).", show_default=False)] = None,
    edge_model: Annotated[str | None, typer.Option(help="Tie probabilities (default: the run's).", show_default=False)] = None,
    top: Annotated[int, typer.Option(help="Customers most likely reached to show and keep in the JSON.")] = 20,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the result as JSON here.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write every customer's activation probability here (CSV).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same result.")] = 42,
) -> None:
    """What-if: simulate the cascade from SEEDS while PROTECTED customers never activate.

    Prints the expected cascade size with its standard error, the curve per step and the
    customers most likely reached; writes the full result as JSON (--out) and every
    customer's activation probability as CSV (--csv).

    Example: carenet simulate out/demo --seeds C000001,C000002 --protected C000003 --runs 5000
    """
    from carenet.graphs.model import CustomerGraph
    from carenet.run import what_if

    graph = CustomerGraph.load(run_dir / "graph")
    params: dict[str, Any] = {}
    meta = run_dir / "run.json"
    if meta.exists():
        params = json.loads(meta.read_text()).get("parameters", {})
    seed_ids = _ids_arg(seeds, seeds_file, "seeds")
    if not seed_ids:
        raise InvalidInputError("--seeds: give at least one customer id (or --seeds-file)")
    result = what_if(graph, params, seed_ids,
                     protected=_ids_arg(protected, protected_file, "protected"), model=model,
                     runs=runs, seed=seed, recovery=recovery, edge_model=edge_model)
    d = result.to_dict(top=top)
    table = Table(title=f"{model.upper()} cascade, {runs:,} simulations", show_header=False,
                  title_justify="left")
    table.add_row("seeds", ", ".join(d["seeds"][:10]) + (" ..." if len(d["seeds"]) > 10 else ""))
    if d["protected"]:
        table.add_row("protected", f"{len(d['protected']):,}")
    table.add_row("expected cascade", f"{d['expected_size']:,.2f} ± {d['std_error']:.2f} customers "
                  f"(95% {d['low']:,.2f} - {d['high']:,.2f})")
    table.add_row("reached beyond seeds", f"{d['expected_reached']:,.2f}")
    curve = d["curve"]
    last = next((i for i in range(len(curve) - 1, 0, -1) if curve[i] - curve[i - 1] > 1e-9), 0)
    table.add_row("curve per step", "  ".join(f"{i}:{c:,.1f}" for i, c in enumerate(curve[: last + 1][:12])))
    table.add_row("time", f"{d['seconds']:.2f} s")
    console.print(table)
    reached = Table(title="most likely reached", title_justify="left")
    for col in ("customer", "probability", "95% interval"):
        reached.add_column(col)
    for row in d["most_likely_reached"]:
        reached.add_row(row["customer_id"], f"{row['probability']:.3f}", f"{row['low']:.3f} - {row['high']:.3f}")
    console.print(reached)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(d, indent=2) + "\n")
        console.print(f"written {out}")
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        result.to_frame().to_csv(csv, index=False)
        console.print(f"written {csv}")


@friendly_errors
def plan(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `carenet analyze` or `carenet demo` (with its influence step).", show_default=False)],
    budget: Annotated[int, typer.Option("--budget", "-k", min=1, help="Customers to contact.")] = 50,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the plan for a CRM import: .csv or .parquet.")] = None,
    retention: Annotated[float | None, typer.Option(help="Share of contacted customers retained (default: the run's, 0.3).", show_default=False)] = None,
    runs: Annotated[int | None, typer.Option(help="Cascade realisations the greedy optimises on (default: the run's, 200).", show_default=False)] = None,
    evaluation_runs: Annotated[int | None, typer.Option(help="The most fresh realisations measuring the plan and the other strategies; fewer when care.evaluation_error is met first (default: the run's, 1000).", show_default=False)] = None,
    compare: Annotated[str | None, typer.Option(help="Comma list of K at which strategies are compared (default: the run's, 10,50,200).", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the run's).", show_default=False)] = None,
    rows: Annotated[int, typer.Option(help="Plan rows to print.")] = 10,
) -> None:
    """The care plan for a budget of K contacts: who to contact, in which order, and why.

    The plan maximises the expected customer value kept out of the churn cascade when contacted
    customers are retained with the retention rate. It reuses the run's plan when the run
    computed one for at least K customers with the same settings (a greedy plan's first K rows
    are the plan for K), else computes it from the run's tables. Prints the first rows and the
    comparison with top-K by priority, degree, PageRank and at random (fresh simulations,
    95% intervals); --out writes customer_id, rank, priority, reason, community, role, gain,
    protected, protected_low, protected_high.

    Example: carenet plan out/demo --budget 100 --out plan.csv
    """
    from carenet.run import AnalysisRun

    if not (run_dir / "run.json").exists():
        raise InvalidInputError(
            f"{run_dir} is not a run directory (no run.json); analyse the logs first: "
            f"carenet analyze LOG --out RUN_DIR, then carenet plan RUN_DIR --budget {budget}")
    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
        raise InvalidInputError(f"--out must end in .csv or .parquet, not {out.name!r}")
    run = AnalysisRun.load(run_dir)
    with progress_bar(True) as report:
        try:
            result = run.care_plan(
                budget, retention=retention, runs=runs, evaluation_runs=evaluation_runs,
                compare=[int(k) for k in split_list(compare) or []] or None, seed=seed,
                progress=report)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{run_dir}: {exc}") from None
    frame, comparison = result.plan, result.comparison
    source = (f"the run's plan ({result.planned:,} customers), first {budget:,}"
              if result.reused else f"computed in {result.seconds:.1f} s")
    _print_plan(frame, comparison, source, rows)
    if out is not None:
        cols = ["customer_id", "rank", "priority", "reason", "community", "role", "gain",
                "protected", "protected_low", "protected_high"]
        export = frame[[c for c in cols if c in frame.columns]]
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".csv":
            export.to_csv(out, index=False)
        else:
            export.to_parquet(out, index=False)
        console.print(f"written {out} ({len(export):,} customers)")


def _print_plan(frame: Any, comparison: Any, source: str, rows: int) -> None:
    table = Table(title=f"care plan: {source}", title_justify="left")
    for col in ("rank", "customer", "priority", "protected (cumulative, 95%)", "community",
                "role"):
        table.add_column(col)
    first = frame.head(rows).to_dict("records")
    for r in first:
        table.add_row(str(r["rank"]), str(r["customer_id"]), f"{r['priority']:,.1f}",
                      f"{r['protected']:,.1f} ({r['protected_low']:,.1f} - "
                      f"{r['protected_high']:,.1f})", str(r.get("community", "")),
                      str(r.get("role", "")))
    console.print(table)
    for r in first:
        if r.get("reason"):
            console.print(f"{r['rank']}. {r['customer_id']}: {r['reason']}", highlight=False,
                          soft_wrap=True)
    if comparison is not None and len(comparison):
        comp = Table(title="expected value protected, fresh simulations (95% interval)",
                     title_justify="left")
        for col in ("strategy", "k", "protected", "interval", "vs plan (paired)"):
            comp.add_column(col)
        for r in comparison.to_dict("records"):
            vs = ("-" if r["strategy"] == "plan" else
                  f"{r['vs_plan']:+,.1f} ({r['vs_plan_low']:+,.1f} .. {r['vs_plan_high']:+,.1f})")
            comp.add_row(r["strategy"], str(r["k"]), f"{r['protected']:,.1f}",
                         f"{r['low']:,.1f} - {r['high']:,.1f}", vs)
        console.print(comp)


@friendly_errors
def explain(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `carenet analyze`.", show_default=False)],
    customer: Annotated[str, typer.Argument(help="The customer id to explain (as in the run's customers table).", show_default=False)],
    ties: Annotated[int | None, typer.Option(help="Strongest ties to name (default: the run's care.reason_ties).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the explanation as JSON here.")] = None,
) -> None:
    """Why CUSTOMER ranks where it does: the plain-language reason and the numbers behind it.

    Any customer of the run can be explained, not only those the care step gave a reason;
    the sentence is the one the API and the views show (one implementation:
    :meth:`carenet.run.AnalysisRun.explain`).

    Example: carenet explain out/demo C000001
    """
    from carenet.run import AnalysisRun

    if not (run_dir / "run.json").exists():
        raise InvalidInputError("not a run directory (no run.json)", file=run_dir)
    try:
        doc = AnalysisRun.load(run_dir).explain(customer, ties=ties)
    except RunNotFoundError as exc:  # an id the user typed: bad input (exit 2), not a failure
        raise InvalidInputError(f"{run_dir}: {exc}") from None
    console.print(f"{customer}: {doc.get('reason', '')}", highlight=False, soft_wrap=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        console.print(f"written {out}")
