"""``carenet analyze`` and ``carenet demo``: analyse logs, save the run, publish it, print it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from carenet.cli.options import (
    ANALYZE_KEYS,
    DIFFUSION,
    ENGINE_KEYS,
    GRAPH,
    MEASURES,
    OUTPUT,
    TABLES,
    Channel,
    ChannelCol,
    CollectMaxTies,
    Columns,
    ConfigFile,
    Delimiter,
    EngineName,
    HalfLife,
    Header,
    Quiet,
    Seed,
    SourceCol,
    SparkConf,
    SparkMaster,
    TargetCol,
    TimeCol,
    TimeFormat,
    TimeUnit,
    WeightCol,
    config_overrides,
    load_config,
)
from carenet.cli.report import write_html_report
from carenet.cli.ui import console, friendly_errors, progress_bar
from carenet.config import AnalysisConfig
from carenet.errors import InvalidInputError


@friendly_errors
def analyze(
    logs: Annotated[list[Path], typer.Argument(help="Interaction log file(s): CSV (also .gz, any delimiter, SNAP-style whitespace), Parquet or JSON Lines.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.", rich_help_panel=OUTPUT)] = Path("carenet-run"),
    customers: Annotated[Path | None, typer.Option("--customers", help="Customers table: customer_id, value, segment, churn_score, ...", rich_help_panel=TABLES)] = None,
    events: Annotated[Path | None, typer.Option("--events", help="Events table: customer_id, event (churn, complaint, ...), timestamp.", rich_help_panel=TABLES)] = None,
    config: ConfigFile = None,
    source_col: SourceCol = None,
    target_col: TargetCol = None,
    time_col: TimeCol = None,
    weight_col: WeightCol = None,
    channel_col: ChannelCol = None,
    columns: Columns = None,
    header: Header = None,
    delimiter: Delimiter = None,
    time_unit: TimeUnit = None,
    time_format: TimeFormat = None,
    channel: Channel = None,
    half_life: HalfLife = None,
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
    seed: Seed = None,
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
    quiet: Quiet = False,
    make_report: Annotated[bool, typer.Option("--report/--no-report", help="Also write the HTML report and its interactive views to OUT/report.", rich_help_panel=OUTPUT)] = False,
    engine: EngineName = None,
    spark_master: SparkMaster = None,
    spark_conf: SparkConf = None,
    collect_max_ties: CollectMaxTies = None,
) -> None:
    """Analyse interaction logs, write a run directory and publish the run to the store.

    Writes customers.parquet and customers.csv (one row per customer: customer_id and one
    column per measure), rejects.csv (every rejected row with file, line and reason),
    run.json (parameters, timings, counts, library versions) and graph/ (the tie arrays).

    Example: carenet analyze CollegeMsg.txt --columns source,target,timestamp --out runs/college
    """
    cfg = load_config(config, config_overrides(locals(), ANALYZE_KEYS | ENGINE_KEYS))
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
    from carenet.store import RunStore, default_db_url, describe_url
    from carenet.store.publish import analyze_and_publish

    store = RunStore(db or default_db_url()) if publish else None
    try:
        with progress_bar(not quiet) as report:
            if cfg.engine.name == "spark":
                from carenet.spark.engine import analyze_and_publish_spark

                run = analyze_and_publish_spark(logs, customers=customers, events=events,
                                                config=cfg, previous=previous, progress=report,
                                                out=out, store=store)
            else:
                run = analyze_and_publish(logs, customers=customers, events=events, config=cfg,
                                          previous=previous, progress=report, out=out,
                                          store=store)
    finally:
        if store is not None:
            store.close()
    path = out
    if not hasattr(run, "graph"):  # the Spark engine's distributed path, run without a store
        console.print(f"run {run.run_id}: {run.meta['results']['engine']['reason']}; "
                      f"written to {out} (the per-customer table; not published: no store)",
                      highlight=False, soft_wrap=True)
        return run
    store_url = describe_url(store.url) if store is not None else None
    print_run(run, path)
    if store_url is not None:
        console.print(f"published run {run.run_id} to {store_url}; serve it with: "
                      f"carenet serve --db {store_url}", highlight=False, soft_wrap=True)
    return run


def _exposure_error(ex: dict[str, Any]) -> str:
    """The exposure estimate's error: reached, target, worlds and why it stopped (a budget
    stop on a big graph means the target was not met; the user should see it).
    """
    if ex.get("error_target") is None or ex.get("error") is None:
        return ""
    why = {"error": "target met", "max_runs": "at the most worlds (exposure_runs)",
           "budget": "work budget spent: the graph is large"}.get(ex.get("stop_reason", ""), "")
    return (f"; half-width {ex['error']:.3f} (target {ex['error_target']:.3g}) "
            f"after {ex['runs']:,} worlds" + (f", {why}" if why else ""))


def _stop_note(part: dict[str, Any]) -> str:
    """What the summary adds when a sampled part stopped before its error target: the
    target it missed and why (the work budget or a count cap), from its run.json entry.
    """
    reason = part.get("stop_reason") or part.get("stopped")
    if reason in (None, "error target met", "fixed runs"):
        return ""
    why = "stopped by the work budget" if reason == "budget" else reason
    return f"; {why}, target {part.get('error_target')}"


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
        table.add_row("influence", f"{est['rr_sets']:,} RR sets (epsilon {est['epsilon_achieved']:.3g}"
                      + _stop_note(est) + "); top: "
                      + ", ".join(f"{t['customer_id']} {t['influence']:.1f}" for t in top))
        if infl.get("seed_set"):
            sel = infl["seed_set"]
            table.add_row("seed set", f"k={sel['k']}, {sel['rr_sets']:,} RR sets (epsilon "
                          f"{sel['error']:.3g}" + _stop_note(sel) + ")")
        ex = infl["exposure"]
        table.add_row("exposure", f"{ex['seeds']:,} seeds, {ex['exposed']:,} customers exposed, mean {ex['mean_exposure']:.3f}"
                      + _exposure_error(ex))
        for row in infl.get("seed_set_comparison", []):
            table.add_row(f"  seeds by {row['strategy']}", f"k={row['k']} spread {row['spread']:,.1f} ± {row['std_error']:.1f}")
    risk = (run.results or {}).get("risk") or {}
    if risk.get("lapse"):
        lp = risk["lapse"]
        table.add_row("lapses", f"{lp['lapsed']:,} of {lp['active_before']:,} went silent for "
                      f"{lp['horizon_days']:.3g} days (horizon: {lp['chosen']['horizon']}); "
                      f"gaps in the log: {len(lp['gaps'])}")
    if risk.get("method"):
        oot = risk.get("out_of_time") or {}
        table.add_row("risk model", f"{risk['method']}"
                      + (f", out-of-time AUC {oot['auc']:.3f}, Brier {oot['brier']:.4f}"
                         if oot else "")
                      + (f", calibration {risk['calibration']}" if risk.get("calibration")
                         else ""))
    care = (run.results or {}).get("care") or {}
    if care.get("plan"):
        p = care["plan"]
        table.add_row("care plan", f"{p['planned']:,} customers protect {p['protected']:,.0f} "
                      f"({p['protected_low']:,.0f} - {p['protected_high']:,.0f}) of "
                      f"{p['value_at_risk']:,.0f} value at risk (retention {p['retention']:g})")
        ev = (p.get("parameters") or {}).get("evaluation") or {}
        if ev:
            err = "n/a" if ev.get("error") is None else f"{ev['error']:.3g}"
            table.add_row("  evaluation", f"{ev['runs']:,} realisations, relative error {err}"
                          + _stop_note(ev))
        for row in p["comparison"]:
            if row["k"] == p["budget"] and row["strategy"] != "plan":
                label = (f"  {row['k']} at random" if row["strategy"] == "random"
                         else f"  top-{row['k']} by {row['strategy']}")
                table.add_row(label,
                              f"{row['protected']:,.0f} ({row['low']:,.0f} - {row['high']:,.0f})")
    table.add_row("time", f"{run.timings.get('total', 0):.2f} s")
    table.add_row("written to", str(path))
    console.print(table)
    for f in (getattr(run, "loading", None) or {}).get("files", []):
        for note in f.get("notes", []):
            if "--columns" in note:
                console.print(f"note: {f.get('file')}: {note}", highlight=False, soft_wrap=True)
    for message in risk.get("messages", []):
        if message.startswith("risk: out-of-time"):
            continue
        console.print(f"note: {message}", highlight=False, soft_wrap=True)


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

