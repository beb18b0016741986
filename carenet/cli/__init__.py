"""The ``carenet`` command line: generate data, analyse logs, inspect files, run the demo.

Every command calls the same library functions a notebook would (:func:`carenet.analyze`,
:func:`carenet.synthetic.generate`); this module only parses flags, shows progress
and prints results. Errors the user can fix (a missing file, a bad row format, an unknown
column) are printed as one line naming the file, line and column, with exit code 2, never as a
traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from carenet.config import AnalysisConfig
from carenet.errors import CarenetError, EmptyGraphError, InvalidInputError

app = typer.Typer(
    name="carenet",
    help=(
        "Find and care for the customers who carry a community.\n\n"
        "carenet turns interaction logs (calls, messages, referrals, ...) into a customer "
        "graph and measures each customer's position, influence and exposure.\n\n"
        "Start with `carenet demo` (analyses the shipped sample) or "
        "`carenet analyze LOG.csv --out runs/first`; `carenet inspect LOG.csv` shows how a "
        "file will be read."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
console = Console(stderr=False)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

INPUT = "Input columns (found by name or position when not given)"
GRAPH = "Graph"
TABLES = "Side tables and config"
MEASURES = "Centralities and communities"
OUTPUT = "Output"
DIFFUSION = "Influence and exposure"


def friendly_errors(fn: F) -> F:
    """Turn carenet errors into one red line and an exit code (2: bad input, 1: other)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (InvalidInputError, EmptyGraphError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except CarenetError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A rich progress display fed by the pipeline's ``(step, done, total)`` callback."""
    if not enabled or not sys.stderr.isatty():
        yield lambda step, done=None, total=None: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}
        last: list[str] = []

        def report(step: str, done: float | None = None, total: float | None = None) -> None:
            if step not in tasks:
                if last:
                    prev = tasks[last[-1]]
                    bar.update(prev, total=1, completed=1)
                tasks[step] = bar.add_task(step, total=None, detail="")
                last.append(step)
            detail = ""
            if done is not None and step == "load":
                detail = f"{int(done):,} rows"
            elif done is not None and total:
                detail = f"{done:,.0f}/{total:,.0f}"
            bar.update(tasks[step], total=total, completed=done or 0, detail=detail)

        yield report
        if last:
            bar.update(tasks[last[-1]], total=1, completed=1)


# ---------------------------------------------------------------------------- generate
@app.command()
@friendly_errors
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the data set to.")],
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 3000,
    interactions: Annotated[int, typer.Option(help="Number of interactions (log rows).")] = 60_000,
    mean_degree: Annotated[float, typer.Option(help="Average ties per customer.")] = 8.0,
    community_size: Annotated[float, typer.Option(help="Average community size.")] = 120.0,
    mixing: Annotated[float, typer.Option(help="Share of ties leaving their community (0-1).")] = 0.15,
    period_days: Annotated[float, typer.Option(help="Length of the observed period in days.")] = 180.0,
    transmission: Annotated[float, typer.Option(help="Churn contagion along a tie of mean strength.")] = 0.08,
    timestamps: Annotated[str, typer.Option(help="iso (text) or epoch (seconds).")] = "iso",
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 7,
) -> None:
    """Generate a synthetic customer community with a known churn cascade.

    Writes interactions, customers, events and truth tables (the truth holds each customer's
    planted community, churn time and who passed the churn on), plus generator.json.
    """
    from carenet.synthetic import GeneratorConfig, truth_summary
    from carenet.synthetic import generate as make

    cfg = GeneratorConfig(
        customers=customers, interactions=interactions, mean_degree=mean_degree,
        community_size=community_size, mixing=mixing, period_days=period_days,
        transmission=transmission, timestamps=timestamps, seed=seed,
    )
    t0 = time.perf_counter()
    with err_console.status("generating"):
        data = make(cfg)
        paths = data.write(out, fmt=fmt)
    summary = truth_summary(data)
    table = Table(title=f"generated in {time.perf_counter() - t0:.1f} s", show_header=False)
    for k, v in summary.items():
        table.add_row(k.replace("_", " "), f"{v:,}")
    for k, p in paths.items():
        table.add_row(f"{k} file", str(p))
    console.print(table)


# ---------------------------------------------------------------------------- analyze
def _config(
    config: Path | None, overrides: dict[str, Any]
) -> AnalysisConfig:
    base = AnalysisConfig.from_toml(config) if config is not None else AnalysisConfig()
    return base.with_overrides(overrides)


def _split_list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _channel_weights(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    out: dict[str, float] = {}
    for part in _split_list(text) or []:
        name, sep, value = part.partition("=")
        if not sep:
            raise InvalidInputError(f"--channel-weights wants name=weight pairs, not {part!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InvalidInputError(f"--channel-weights: {value!r} is not a number") from None
    return out


@app.command()
@friendly_errors
def analyze(
    logs: Annotated[list[Path], typer.Argument(help="Interaction log file(s): CSV (also .gz, any delimiter, SNAP-style whitespace), Parquet or JSON Lines.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.", rich_help_panel=OUTPUT)] = Path("carenet-run"),
    customers: Annotated[Path | None, typer.Option("--customers", help="Customers table: customer_id, value, segment, churn_score, ...", rich_help_panel=TABLES)] = None,
    events: Annotated[Path | None, typer.Option("--events", help="Events table: customer_id, event (churn, complaint, ...), timestamp.", rich_help_panel=TABLES)] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="analysis.toml with input, graph, ... sections; flags override it.", rich_help_panel=TABLES)] = None,
    source_col: Annotated[str | None, typer.Option(help="Column of the customer who initiated (e.g. caller, from).", rich_help_panel=INPUT)] = None,
    target_col: Annotated[str | None, typer.Option(help="Column of the customer contacted (e.g. callee, to).", rich_help_panel=INPUT)] = None,
    time_col: Annotated[str | None, typer.Option(help="Timestamp column; '' for none.", rich_help_panel=INPUT)] = None,
    weight_col: Annotated[str | None, typer.Option(help="Weight column (count, minutes, duration, ...); '' for none.", rich_help_panel=INPUT)] = None,
    channel_col: Annotated[str | None, typer.Option(help="Channel column (call, sms, chat, ...); '' for none.", rich_help_panel=INPUT)] = None,
    columns: Annotated[str | None, typer.Option(help="Names for the fields of a headerless file, e.g. source,target,timestamp.", rich_help_panel=INPUT)] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header", help="Whether the first line names the columns (default: detected).", rich_help_panel=INPUT, show_default=False)] = None,
    delimiter: Annotated[str | None, typer.Option(help="Field delimiter (default: detected; 'whitespace' for runs of blanks).", rich_help_panel=INPUT)] = None,
    time_unit: Annotated[str | None, typer.Option(help="auto, s, ms, us, ns or iso.", rich_help_panel=INPUT)] = None,
    time_format: Annotated[str | None, typer.Option(help="strptime format of text timestamps, e.g. '%d/%m/%Y %H:%M'.", rich_help_panel=INPUT)] = None,
    channel: Annotated[str | None, typer.Option(help="Channel of every row of a log without a channel column (e.g. sms).", rich_help_panel=INPUT)] = None,
    half_life: Annotated[str | None, typer.Option(help="Decay half-life of interaction weight, e.g. 30d, 12h, none (default 30d).", rich_help_panel=GRAPH, show_default=False)] = None,
    reference_time: Annotated[str | None, typer.Option(help="'Now' for ages (ISO 8601 or epoch); default: newest interaction.", rich_help_panel=GRAPH)] = None,
    channels: Annotated[str | None, typer.Option(help="Comma list of accepted channels; others are rejected.", rich_help_panel=GRAPH)] = None,
    channel_weights: Annotated[str | None, typer.Option(help="Per-channel weight, e.g. call=2,sms=1.", rich_help_panel=GRAPH)] = None,
    symmetrize: Annotated[bool | None, typer.Option("--symmetrize/--directed", help="Merge u->v and v->u into undirected ties (default: directed).", rich_help_panel=GRAPH, show_default=False)] = None,
    min_weight: Annotated[float | None, typer.Option(help="Drop ties lighter than this.", rich_help_panel=GRAPH)] = None,
    pseudonymize: Annotated[bool | None, typer.Option("--pseudonymize/--raw-ids", help="Replace customer ids by a salted hash (salt from $CARENET_SALT).", rich_help_panel=GRAPH, show_default=False)] = None,
    influence: Annotated[bool | None, typer.Option("--influence/--no-influence", help="Compute influence, exposure and seed sets (default: yes).", rich_help_panel=DIFFUSION, show_default=False)] = None,
    diffusion_model: Annotated[str | None, typer.Option(help="ic or lt (default ic).", rich_help_panel=DIFFUSION, show_default=False)] = None,
    edge_model: Annotated[str | None, typer.Option(help="weighted_cascade (default), exponential or constant.", rich_help_panel=DIFFUSION, show_default=False)] = None,
    edge_scale: Annotated[float | None, typer.Option(help="Scale of the exponential edge model: p = 1 - exp(-w/scale).", rich_help_panel=DIFFUSION, show_default=False)] = None,
    edge_probability: Annotated[float | None, typer.Option(help="Probability of every tie under the constant edge model.", rich_help_panel=DIFFUSION, show_default=False)] = None,
    epsilon: Annotated[float | None, typer.Option(help="Relative error of the top customers' influence (default 0.1).", rich_help_panel=DIFFUSION, show_default=False)] = None,
    delta: Annotated[float | None, typer.Option(help="Failure probability of that guarantee (default 0.01).", rich_help_panel=DIFFUSION, show_default=False)] = None,
    negative_events: Annotated[str | None, typer.Option(help="Comma list of events that make a customer an exposure seed (default churn,complaint).", rich_help_panel=DIFFUSION, show_default=False)] = None,
    lookback: Annotated[str | None, typer.Option(help="How recent those events must be, e.g. 90d (default), none.", rich_help_panel=DIFFUSION, show_default=False)] = None,
    exposure_runs: Annotated[int | None, typer.Option(help="Simulations for exposure (default 2000).", rich_help_panel=DIFFUSION, show_default=False)] = None,
    seed_set_size: Annotated[int | None, typer.Option(help="k of the IMM seed set compared with degree and PageRank (default 50; 0 skips).", rich_help_panel=DIFFUSION, show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for every stochastic step (default 42).", show_default=False)] = None,
    measures: Annotated[str | None, typer.Option(help="Centralities to compute: comma list of pagerank, eigenvector, betweenness, harmonic, core (default all).", rich_help_panel=MEASURES)] = None,
    exact_max: Annotated[int | None, typer.Option(help="Betweenness and harmonic closeness are exact up to this many customers, sampled above (default 5000).", rich_help_panel=MEASURES)] = None,
    samples: Annotated[int | None, typer.Option(help="Source customers sampled for betweenness / harmonic above --exact-max (default 128).", rich_help_panel=MEASURES)] = None,
    backend: Annotated[str | None, typer.Option(help="Centrality backend: auto, native, igraph or networkx.", rich_help_panel=MEASURES)] = None,
    community_algorithm: Annotated[str | None, typer.Option("--communities", help="leiden (default), louvain, label_propagation or infomap.", rich_help_panel=MEASURES)] = None,
    objective: Annotated[str | None, typer.Option(help="Leiden objective: modularity (default) or cpm.", rich_help_panel=MEASURES)] = None,
    resolution: Annotated[float | None, typer.Option(help="Community resolution: higher gives smaller communities (default 1.0).", rich_help_panel=MEASURES)] = None,
    recent: Annotated[str | None, typer.Option(help="Window before the reference time in which churn/complaint events count as recent, e.g. 30d; none = any age.", rich_help_panel=MEASURES)] = None,
    previous: Annotated[Path | None, typer.Option("--previous", help="Previous run directory: communities keep its ids; splits, merges, births and deaths are reported.", rich_help_panel=MEASURES)] = None,
    db: Annotated[str | None, typer.Option("--db", help="Store to publish the run to: a SQLite file or postgresql:// URL (default: $CARENET_DB or a SQLite file in ~/.local/share/carenet).", rich_help_panel=OUTPUT, show_default=False)] = None,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Publish the run to the store so that `carenet serve` serves it.", rich_help_panel=OUTPUT)] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    make_report: Annotated[bool, typer.Option("--report/--no-report", help="Also write the HTML report and its interactive views to OUT/report.", rich_help_panel=OUTPUT)] = False,
) -> None:
    """Analyse interaction logs, write a run directory and publish the run to the store.

    Writes customers.parquet and customers.csv (one row per customer: customer_id and one
    column per measure), rejects.csv (every rejected row with file, line and reason),
    run.json (parameters, timings, counts, library versions) and graph/ (the tie arrays).

    Example: carenet analyze CollegeMsg.txt --columns source,target,timestamp --out runs/college
    """
    cfg = _config(config, {
        "seed": seed,
        "input.source_col": source_col, "input.target_col": target_col,
        "input.time_col": time_col, "input.weight_col": weight_col,
        "input.channel_col": channel_col, "input.columns": _split_list(columns),
        "input.header": header, "input.delimiter": delimiter, "input.time_unit": time_unit,
        "input.time_format": time_format, "input.channel": channel,
        "graph.half_life": half_life, "graph.reference_time": reference_time,
        "graph.channels": _split_list(channels),
        "graph.channel_weights": _channel_weights(channel_weights),
        "graph.symmetrize": symmetrize, "graph.min_weight": min_weight,
        "graph.pseudonymize": pseudonymize,
        "measures.measures": _split_list(measures), "measures.exact_max": exact_max,
        "measures.samples": samples, "measures.backend": backend,
        "communities.algorithm": community_algorithm, "communities.objective": objective,
        "communities.resolution": resolution, "communities.recent": recent,
        "influence.enabled": influence, "influence.model": diffusion_model,
        "influence.edge_model": edge_model, "influence.edge_scale": edge_scale,
        "influence.edge_probability": edge_probability, "influence.epsilon": epsilon,
        "influence.delta": delta, "influence.negative_events": _split_list(negative_events),
        "influence.lookback": lookback, "influence.exposure_runs": exposure_runs,
        "influence.seed_set_size": seed_set_size,
    })
    prev_run = None
    if previous is not None:
        from carenet.pipeline import AnalysisRun

        prev_run = AnalysisRun.load(previous)
    run_and_report(logs, cfg, out, customers=customers, events=events, quiet=quiet,
                   previous=prev_run, db=db if publish else None, publish=publish)
    if make_report:
        write_html_report(out, quiet=quiet)


def run_and_report(
    logs: list[Path], cfg: AnalysisConfig, out: Path, *, customers: Path | None = None,
    events: Path | None = None, quiet: bool = False, previous: Any = None,
    db: str | None = None, publish: bool = False,
) -> Any:
    """Analyse, save the run, publish it to the store (``publish``; ``db`` or the default
    store) and print its summary (shared by ``analyze`` and ``demo``).
    """
    from carenet.pipeline import analyze as run_analysis

    with progress_bar(not quiet) as report:
        run = run_analysis(logs, customers=customers, events=events, config=cfg,
                           progress=report, previous=previous)
        report("save", None, None)
        path = run.save(out)
        store_url = None
        if publish:
            from carenet.store import RunStore, default_db_url, describe_url

            report("publish", None, None)
            url = db or default_db_url()
            store = RunStore(url)
            try:
                store.publish(run)
            finally:
                store.close()
            store_url = describe_url(store.url)
    print_run(run, path)
    if store_url is not None:
        console.print(f"published run {run.run_id} to {store_url}; serve it with: "
                      f"carenet serve --db {store_url}", highlight=False, soft_wrap=True)
    return run


def print_run(run: Any, path: Path) -> None:
    """A short human summary of a run."""
    c = run.counts
    s = run.summary
    table = Table(title=f"carenet run {run.run_id}", show_header=False, title_justify="left")
    table.add_row("interactions read", f"{c['rows_read']:,}")
    table.add_row("loaded", f"{c['rows_loaded']:,}")
    rejected = ", ".join(f"{k} {v:,}" for k, v in c["rejected"].items())
    table.add_row("rejected", f"{c['rows_rejected']:,}" + (f"  ({rejected})" if rejected else ""))
    table.add_row("customers", f"{c['customers']:,}")
    kind = "directed" if s["directed"] else "undirected"
    table.add_row("ties", f"{c['ties']:,} {kind}")
    table.add_row("components", f"{s['components']:,} (largest {s['largest_component']:,})")
    if s.get("reciprocity") is not None:
        table.add_row("reciprocity", f"{s['reciprocity']:.3f}")
    if c.get("events"):
        table.add_row("events", f"{c['events']:,}")
    comm = (run.results or {}).get("communities")
    if comm:
        table.add_row("communities", f"{comm['communities']:,} ({comm['algorithm']}, "
                      f"modularity {comm['modularity']:.3f}, largest {comm['largest']:,})")
        roles = comm.get("roles", {}).get("counts", {})
        if roles:
            table.add_row("roles", ", ".join(f"{k} {v:,}" for k, v in roles.items()))
    changes = (run.results or {}).get("community_changes")
    if changes:
        table.add_row("vs previous run", ", ".join(f"{k} {v:,}" for k, v in changes["counts"].items()))
    moved = (run.results or {}).get("changes")
    if moved:
        risen = ", ".join(f"{m} {r['customers']:,} ({r['significant']:,} significant)"
                          for m, r in moved["rising"].items() if r["customers"])
        table.add_row("rose since previous", risen or "nobody")
        if moved["lost_hubs"]:
            table.add_row("lost their hub", "communities " + ", ".join(map(str, moved["lost_hubs"])))
    infl = run.results.get("influence", {})
    if infl:
        est = infl["influence"]["estimate"]
        top = infl["influence"]["top"][:3]
        table.add_row("influence", f"{est['rr_sets']:,} RR sets (epsilon {est['epsilon_achieved']:.3g}); top: "
                      + ", ".join(f"{t['customer_id']} {t['influence']:.1f}" for t in top))
        ex = infl["exposure"]
        table.add_row("exposure", f"{ex['seeds']:,} seeds, {ex['exposed']:,} customers exposed, mean {ex['mean_exposure']:.3f}")
        for row in infl.get("seed_set_comparison", []):
            table.add_row(f"  seeds by {row['strategy']}", f"k={row['k']} spread {row['spread']:,.1f} ± {row['std_error']:.1f}")
    care = (run.results or {}).get("care") or {}
    if care.get("plan"):
        p = care["plan"]
        table.add_row("care plan", f"{p['planned']:,} customers protect {p['protected']:,.0f} "
                      f"({p['protected_low']:,.0f} - {p['protected_high']:,.0f}) of "
                      f"{p['value_at_risk']:,.0f} value at risk (retention {p['retention']:g})")
        for row in p["comparison"]:
            if row["k"] == p["budget"] and row["strategy"] != "plan":
                label = (f"  {row['k']} at random" if row["strategy"] == "random"
                         else f"  top-{row['k']} by {row['strategy']}")
                table.add_row(label,
                              f"{row['protected']:,.0f} ({row['low']:,.0f} - {row['high']:,.0f})")
    table.add_row("time", f"{run.timings.get('total', 0):.2f} s")
    table.add_row("written to", str(path))
    console.print(table)


# ---------------------------------------------------------------------------- inspect
@app.command()
@friendly_errors
def inspect(
    log: Annotated[Path, typer.Argument(help="A log file to look at.", show_default=False)],
    delimiter: Annotated[str | None, typer.Option(help="Field delimiter (default: detected).")] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header", show_default=False, help="Whether the first line names the columns.")] = None,
    columns: Annotated[str | None, typer.Option(help="Names for the fields of a headerless file.")] = None,
) -> None:
    """Show how carenet reads a log: format, delimiter, header, which column plays which role.

    Reads only the first rows; run it before a long analysis to check the column mapping.
    """
    from carenet.graphs.logs import LogOptions, LogReader
    from carenet.graphs.tables import ReadOptions

    reader = LogReader(log, LogOptions(read=ReadOptions(
        delimiter=delimiter, header=header,
        columns=tuple(_split_list(columns) or ()) or None)))
    sn = reader.table.sniffed
    info = {
        "file": str(log),
        "format": sn.format + (f" ({sn.compression})" if sn.compression else ""),
        "delimiter": repr(sn.delimiter) if sn.format == "csv" else "-",
        "header": sn.header,
        "comment lines": sn.skip_rows,
        "columns": ", ".join(reader.table.names),
    }
    table = Table(title="how carenet reads this file", show_header=False, title_justify="left")
    for k, v in info.items():
        table.add_row(k, str(v))
    for role, col in reader.columns.items():
        table.add_row(f"  {role}", col)
    console.print(table)


# ---------------------------------------------------------------------------- demo
def sample_dir() -> Path:
    """The shipped sample: ./data/sample, or the one next to the package source."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        d = base / "data" / "sample"
        if (d / "interactions.csv").exists():
            return d
    raise InvalidInputError(
        "the sample data (data/sample/interactions.csv) was not found; run from the "
        "repository root or regenerate it with: carenet generate --out data/sample"
    )


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")] = Path("out/demo"),
    db: Annotated[str | None, typer.Option("--db", help="Store to publish the run to (default: $CARENET_DB or a SQLite file in ~/.local/share/carenet).", show_default=False)] = None,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Publish the run to the store so that `carenet serve` serves it.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Analyse the shipped sample (3,000 customers, 60,000 interactions, their values and
    churn/complaint events) end to end, write the run to OUT and publish it to the store.
    """
    d = sample_dir()
    run_and_report([d / "interactions.csv"], AnalysisConfig(), out,
                   customers=d / "customers.csv", events=d / "events.csv", quiet=quiet,
                   db=db, publish=publish)
    write_html_report(out, quiet=quiet)


# ---------------------------------------------------------------------------- report
def write_html_report(run_dir: Path, out: Path | None = None, *, backtest: Path | None = None,
                      quiet: bool = False) -> Path:
    """Write the HTML report of a run (and its views) and print where it is."""
    from carenet.viz.report import write_report

    t0 = time.perf_counter()
    with progress_bar(not quiet) as report:
        path = write_report(run_dir, out, backtest=backtest,
                            progress=lambda msg: report("report", None, None))
    console.print(f"report: {path} ({len(list(path.parent.glob('*.html'))) - 1} interactive "
                  f"views next to it; {time.perf_counter() - t0:.1f} s)", highlight=False,
                  soft_wrap=True)
    return path


@app.command()
@friendly_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `carenet analyze` or `carenet demo`.", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Report directory (default: RUN_DIR/report).", show_default=False)] = None,
    backtest: Annotated[Path | None, typer.Option("--backtest", help="A `carenet backtest` output directory (or its lift_curve.csv): adds the lift curve.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Write one HTML report of a run: summary figures, plots, the customers to look at
    first with their reasons, the community table, and links to interactive views (community
    map, the largest communities, the top customers, a what-if cascade) written next to it.

    Every page works offline (no script or style is fetched). Example: carenet report out/demo
    """
    write_html_report(run_dir, out, backtest=backtest, quiet=quiet)


# ---------------------------------------------------------------------------- serve, keys
DB_HELP = "Store URL: a SQLite file or postgresql://user@host/db (default: $CARENET_DB or a SQLite file in ~/.local/share/carenet)."


@app.command()
@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None,
    workers: Annotated[int, typer.Option(help="Server processes (each with its own connections).")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the store over HTTP: the REST API under /v1, docs at /docs, the dashboard and
    views at /dashboard.

    Every /v1 endpoint needs an API key: create one with `carenet keys create --role reader`;
    the dashboard asks for one once and keeps a session cookie.
    """
    import os

    import uvicorn

    from carenet.store import RunStore, default_db_url, describe_url

    url = db or default_db_url()
    os.environ["CARENET_DB"] = url  # the app factory (and each worker process) reads it
    RunStore(url).close()  # create the schema once, and fail early on a bad URL
    err_console.print(f"serving {describe_url(url)} on http://{host}:{port} (docs: /docs)",
                      highlight=False)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    err_console.print(f"dashboard: http://{shown}:{port}/dashboard (log in with an API key: "
                      "`carenet keys create --role reader`)", highlight=False, soft_wrap=True)
    uvicorn.run("carenet.api.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, access_log=False)


keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@friendly_errors
def keys_create(
    role: Annotated[str, typer.Option(help="reader (reads), analyst (also uploads and starts runs) or admin (also manages keys).")] = "reader",
    name: Annotated[str, typer.Option(help="A note saying who uses the key.")] = "",
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None,
) -> None:
    """Create an API key and print it once (the store keeps only its hash)."""
    from carenet.store import RunStore, default_db_url

    store = RunStore(db or default_db_url())
    try:
        info, token = store.create_key(role, name)
    finally:
        store.close()
    err_console.print(f"created {info.role} key {info.id} ({info.name}); it is shown only "
                      "now:", highlight=False)
    console.print(token, highlight=False, soft_wrap=True)


@keys_app.command("list")
@friendly_errors
def keys_list(db: Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None) -> None:
    """List API keys (ids, names, roles; never the secrets)."""
    from carenet.store import RunStore, default_db_url

    store = RunStore(db or default_db_url())
    try:
        rows = store.list_keys()
    finally:
        store.close()
    table = Table("id", "name", "role", "created", "revoked")
    for r in rows:
        table.add_row(r["id"], r["name"], r["role"], r["created"], r["revoked"] or "")
    console.print(table)


@keys_app.command("revoke")
@friendly_errors
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (as in `carenet keys list`).", show_default=False)],
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None,
) -> None:
    """Revoke an API key."""
    from carenet.store import RunStore, default_db_url

    store = RunStore(db or default_db_url())
    try:
        row = store.revoke_key(key_id)
    finally:
        store.close()
    console.print(f"revoked key {row['id']} ({row['name']})", highlight=False)


# ---------------------------------------------------------------------------- simulate
def _ids_arg(text: str | None, file: Path | None, what: str) -> list[str]:
    ids = _split_list(text) or []
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise InvalidInputError(f"no such {what} file", file=file) from None
        ids += [line.split(",")[0].strip() for line in lines if line.strip()]
    return ids


@app.command()
@friendly_errors
def simulate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `carenet analyze` (its graph and influence settings are used).", show_default=False)],
    seeds: Annotated[str | None, typer.Option("--seeds", "-s", help="Comma list of customer ids that start the cascade.")] = None,
    seeds_file: Annotated[Path | None, typer.Option(help="File with one seed customer id a line.")] = None,
    protected: Annotated[str | None, typer.Option("--protected", "-p", help="Comma list of customer ids who never activate (e.g. contacted by care).")] = None,
    protected_file: Annotated[Path | None, typer.Option(help="File with one protected customer id a line.")] = None,
    model: Annotated[str, typer.Option(help="ic, lt or sir.")] = "ic",
    runs: Annotated[int, typer.Option(help="Number of simulations.")] = 10_000,
    recovery: Annotated[float, typer.Option(help="SIR: per-step recovery probability.")] = 0.5,
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
    from carenet.community.influence import simulate as run_simulation
    from carenet.graphs.model import CustomerGraph

    graph = CustomerGraph.load(run_dir / "graph")
    params: dict[str, Any] = {}
    meta = run_dir / "run.json"
    if meta.exists():
        params = json.loads(meta.read_text()).get("parameters", {}).get("influence", {})
    seed_ids = _ids_arg(seeds, seeds_file, "seeds")
    if not seed_ids:
        raise InvalidInputError("--seeds: give at least one customer id (or --seeds-file)")
    result = run_simulation(
        graph, seed_ids, protected=_ids_arg(protected, protected_file, "protected"),
        model=model, runs=runs, seed=seed,
        edge_model=edge_model or params.get("edge_model", "weighted_cascade"),
        scale=float(params.get("edge_scale", 1.0)),
        probability=float(params.get("edge_probability", 0.1)), recovery=recovery,
    )
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


# ---------------------------------------------------------------------------- backtest
BACKTEST = "Backtest"


@app.command()
@friendly_errors
def backtest(
    log: Annotated[Path, typer.Argument(help="Interaction log with timestamps (CSV, Parquet, JSON Lines).", show_default=False)],
    cutoff: Annotated[list[str], typer.Option("--cutoff", help="Cutoff date(s): ISO 8601, epoch seconds or a share of the log's time span such as 60%; repeat or comma-separate for several.", rich_help_panel=BACKTEST, show_default=False)],
    horizon: Annotated[float, typer.Option("--horizon", help="Days after the cutoff in which churn is predicted.", rich_help_panel=BACKTEST, show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for backtest.json, metrics.csv, lift_curve.csv, scores.parquet, lift_curve.svg/.png and backtest.html.", rich_help_panel=OUTPUT)] = Path("carenet-backtest"),
    events: Annotated[Path | None, typer.Option("--events", help="Events table (customer_id, event, timestamp): churn events label the horizon; earlier churn/complaint events seed exposure. Without it, churn = silence.", rich_help_panel=TABLES)] = None,
    customers: Annotated[Path | None, typer.Option("--customers", help="Customers table (value, churn_score, ...), as for analyze.", rich_help_panel=TABLES)] = None,
    truth: Annotated[Path | None, typer.Option("--truth", help="truth.csv from `carenet generate`: also score the true cascade churners.", rich_help_panel=TABLES)] = None,
    budget: Annotated[int | None, typer.Option("--budget", "-k", help="Contacts K for 'churn captured by K' (default: 5% of the active customers).", rich_help_panel=BACKTEST, show_default=False)] = None,
    lookback: Annotated[float | None, typer.Option("--lookback", help="Days before the cutoff in which a customer must be active to count (default: the horizon).", rich_help_panel=BACKTEST, show_default=False)] = None,
    classifier: Annotated[str, typer.Option("--classifier", help="logistic or hgb (gradient boosting) for the own-activity and network models.", rich_help_panel=BACKTEST)] = "logistic",
    churn_events: Annotated[str, typer.Option("--churn-events", help="Comma list of event kinds meaning churn in --events.", rich_help_panel=BACKTEST)] = "churn",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="analysis.toml for the pre-cutoff analyses; flags override it.", rich_help_panel=TABLES)] = None,
    source_col: Annotated[str | None, typer.Option(help="Column of the customer who initiated.", rich_help_panel=INPUT)] = None,
    target_col: Annotated[str | None, typer.Option(help="Column of the customer contacted.", rich_help_panel=INPUT)] = None,
    time_col: Annotated[str | None, typer.Option(help="Timestamp column.", rich_help_panel=INPUT)] = None,
    weight_col: Annotated[str | None, typer.Option(help="Weight column; '' for none.", rich_help_panel=INPUT)] = None,
    channel_col: Annotated[str | None, typer.Option(help="Channel column; '' for none.", rich_help_panel=INPUT)] = None,
    columns: Annotated[str | None, typer.Option(help="Names for the fields of a headerless file, e.g. source,target,timestamp.", rich_help_panel=INPUT)] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header", help="Whether the first line names the columns (default: detected).", rich_help_panel=INPUT, show_default=False)] = None,
    delimiter: Annotated[str | None, typer.Option(help="Field delimiter (default: detected).", rich_help_panel=INPUT)] = None,
    time_unit: Annotated[str | None, typer.Option(help="auto, s, ms, us, ns or iso.", rich_help_panel=INPUT)] = None,
    channel: Annotated[str | None, typer.Option(help="Channel of every row of a log without a channel column.", rich_help_panel=INPUT)] = None,
    half_life: Annotated[str | None, typer.Option(help="Decay half-life of interaction weight (default 30d).", rich_help_panel=GRAPH, show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 42).", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result table.")] = False,
) -> None:
    """Backtest the scores on a real log: how well do they rank who churned next.

    Scores come from the interactions before each cutoff only: exposure, influence, priority
    (with the care step) and the baselines.

    Churned = active in the window before the cutoff and silent during the horizon (or a churn
    event in --events). Baselines: degree, PageRank, recency-frequency, a classifier on
    own-activity features and the same classifier with network features, both trained out of
    time (one horizon earlier). Reports AUC (DeLong 95% interval), lift at the top 1/5/10%
    and the churners captured by K contacts.

    Example: carenet backtest CollegeMsg.txt --columns source,target,timestamp --cutoff 2004-05-15 --horizon 14 --out bt/college
    """
    from carenet.evaluation.backtest import BacktestOptions, run_backtest
    from carenet.viz.backtest_plot import plot_lift_curves, write_backtest_page

    cfg = _config(config, {
        "seed": seed,
        "input.source_col": source_col, "input.target_col": target_col,
        "input.time_col": time_col, "input.weight_col": weight_col,
        "input.channel_col": channel_col, "input.columns": _split_list(columns),
        "input.header": header, "input.delimiter": delimiter, "input.time_unit": time_unit,
        "input.channel": channel, "graph.half_life": half_life,
    })
    options = BacktestOptions(horizon_days=horizon, lookback_days=lookback, budget=budget,
                              classifier=classifier,
                              churn_events=tuple(_split_list(churn_events) or ("churn",)))
    cutoffs = [c for text in cutoff for c in (_split_list(text) or [])]

    def say(message: str) -> None:
        if not quiet:
            err_console.print(message, highlight=False)

    t0 = time.perf_counter()
    result = run_backtest(log, cutoffs=cutoffs, options=options, events=events,
                          customers=customers, truth=truth, config=cfg, report=say)
    path = result.save(out)
    svg, _ = plot_lift_curves(result.lift_curve, path)
    write_backtest_page(result.to_dict(), result.metrics, path, svg=svg)
    for cut in result.cutoffs:
        lab = cut.labels
        console.print(f"[bold]cutoff {lab['cutoff']}[/]: {lab['population']:,} active, "
                      f"{lab['churners']:,} churned in {horizon:g} days "
                      f"({100 * (lab['churn_rate'] or 0):.1f}%), K = {lab['budget']:,}",
                      highlight=False)
        for target, part in cut.metrics.groupby("target", sort=False):
            table = Table(title=f"target: {target}", title_justify="left", box=box.SIMPLE,
                          pad_edge=False)
            for col in ("score", "AUC", "95% CI", "lift1%", "lift5%", "lift10%", "got@K"):
                table.add_column(col, justify="left" if col == "score" else "right",
                                 no_wrap=True)
            for r in part.to_dict("records"):
                table.add_row(r["score"], f"{r['auc']:.3f}",
                              f"{r['auc_low']:.2f}-{r['auc_high']:.2f}",
                              f"{r['lift_1']:.2f}", f"{r['lift_5']:.2f}", f"{r['lift_10']:.2f}",
                              f"{r['captured_at_k']:.1f}")
            console.print(table)
        for name, comp in cut.comparison.items():
            console.print(f"{name.replace('_', ' ')}: AUC difference {comp['difference']:+.3f} "
                          f"({comp['low']:+.3f} to {comp['high']:+.3f}), p = {comp['p_value']:.3g}",
                          highlight=False)
        for note in cut.notes:
            console.print(f"note: {note}", highlight=False, style="dim")
    console.print(f"written to {path} (backtest.html, metrics.csv, lift_curve.csv, "
                  f"scores.parquet, lift_curve.svg/.png) in {time.perf_counter() - t0:.1f} s",
                  highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------- plan
@app.command()
@friendly_errors
def plan(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `carenet analyze` or `carenet demo` (with its influence step).", show_default=False)],
    budget: Annotated[int, typer.Option("--budget", "-k", min=1, help="Customers to contact.")] = 50,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the plan for a CRM import: .csv or .parquet.")] = None,
    retention: Annotated[float | None, typer.Option(help="Share of contacted customers retained (default: the run's, 0.3).", show_default=False)] = None,
    runs: Annotated[int | None, typer.Option(help="Cascade realisations the greedy optimises on (default: the run's, 200).", show_default=False)] = None,
    evaluation_runs: Annotated[int | None, typer.Option(help="Fresh realisations measuring the plan and the other strategies (default: the run's, 1000).", show_default=False)] = None,
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
    from carenet.pipeline import AnalysisRun

    if not (run_dir / "run.json").exists():
        raise InvalidInputError(
            f"{run_dir} is not a run directory (no run.json); analyse the logs first: "
            f"carenet analyze LOG --out RUN_DIR, then carenet plan RUN_DIR --budget {budget}")
    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
        raise InvalidInputError(f"--out must end in .csv or .parquet, not {out.name!r}")
    run = AnalysisRun.load(run_dir)
    base = AnalysisConfig.from_mapping(run.parameters)
    overrides: dict[str, Any] = {
        "care.budget": budget, "care.retention": retention, "care.plan_runs": runs,
        "care.evaluation_runs": evaluation_runs, "seed": seed,
        "care.compare_k": [int(k) for k in _split_list(compare) or []] or None,
    }
    cfg = base.with_overrides(overrides)
    old = run.tables.get("care_plan")
    same = cfg.with_overrides({"care.budget": base.care.budget}) == base
    if old is not None and same and len(old) >= budget:
        frame = old.head(budget).copy()
        comparison = run.tables.get("care_comparison")
        if comparison is not None:
            comparison = comparison[comparison["k"] <= budget]
        source = f"the run's plan ({len(old):,} customers), first {budget:,}"
    else:
        from carenet.steps.care import compute_care

        t0 = time.perf_counter()
        with progress_bar(True) as report:
            res = compute_care(cfg.with_overrides({"care.reasons_top": 0}), run.graph,
                               run.customers, run.events, run.tables.get("exposure_sources"),
                               progress=report)
        if "care_plan" not in res.tables:
            raise InvalidInputError(f"{run_dir}: {res.results.get('skipped', 'no care plan')}")
        frame = res.tables["care_plan"]
        comparison = res.tables.get("care_comparison")
        source = f"computed in {time.perf_counter() - t0:.1f} s"
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


@app.command()
def version() -> None:
    """Print carenet's version and the versions of the libraries it computes with."""
    from carenet.pipeline import library_versions

    console.print_json(json.dumps(library_versions()))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
