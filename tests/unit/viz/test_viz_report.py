"""The HTML report end to end on a real small run, the plots, and the CLI commands."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner
from vizkit import external_references, small_run, view_data

from carenet.cli import app
from carenet.errors import InvalidInputError
from carenet.pipeline import AnalysisRun
from carenet.viz import plots
from carenet.viz.report import MAX_COMMUNITY_VIEWS, write_report

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, path = small_run(tmp_path_factory.mktemp("report-run"))
    return path


@pytest.fixture(scope="module")
def backtest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("backtest")
    fr = np.linspace(0.05, 1.0, 20)
    rows = [pd.DataFrame({"score": s, "fraction": fr, "captured": fr ** a,
                          "lift": fr ** a / fr}) for s, a in (("priority", 0.5),
                                                               ("degree", 0.8))]
    pd.concat(rows).to_csv(d / "lift_curve.csv", index=False)
    return d


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(str(a["href"]))
        if tag == "img" and a.get("src"):
            self.imgs.append(str(a["src"]))


def _parse(html: str) -> _Links:
    p = _Links()
    p.feed(html)
    return p


def test_report_end_to_end(run_dir: Path, backtest_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    index = write_report(run_dir, out, backtest=backtest_dir)
    assert index == out / "index.html"
    html = index.read_text()
    run = AnalysisRun.load(run_dir)
    # every plot embedded, equal to its file, and the lift curve among them
    parsed = _parse(html)
    svgs = sorted((out / "plots").glob("*.svg"))
    expected = {"influence", "exposure", "communities", "influence-pagerank", "lift"}
    if "care_comparison" in run.tables:
        expected.add("care")
    assert {p.stem for p in svgs} == expected
    embedded = [base64.b64decode(src.split(",", 1)[1]).decode() for src in parsed.imgs
                if src.startswith("data:image/svg+xml;base64,")]
    assert len(parsed.imgs) == len(embedded) == len(svgs)
    assert sorted(embedded) == sorted(p.read_text() for p in svgs)
    # links resolve to files that exist, in the index and in every view page
    pages = {index}
    todo = [index]
    while todo:
        page = todo.pop()
        text = page.read_text()
        targets = _parse(text).hrefs
        if page != index:
            targets += [n["url"] for n in view_data(text)["nodes"] if n.get("url")]
        for href in targets:
            if href.startswith("#"):
                continue
            target = (page.parent / href).resolve()
            assert target.exists(), (page.name, href)
            if target.suffix == ".html" and target not in pages:
                pages.add(target)
                todo.append(target)
    names = {p.name for p in pages}
    n_comm = run.tables["communities"].shape[0]
    assert "community-map.html" in names
    assert sum(n.startswith("community-") and n != "community-map.html" for n in names) == min(
        n_comm, MAX_COMMUNITY_VIEWS)
    assert sum(n.startswith("customer-") for n in names) == 20
    assert sum(n.startswith("cascade-") for n in names) == 1
    assert {p.name for p in out.glob("*.html")} == names  # nothing unreachable either
    # the cascade starts from the run's IMM seeds
    seeds = run.tables["seed_sets"].sort_values("rank")["customer_id"].head(5).tolist()
    cascade = next(out.glob("cascade-*.html")).read_text()
    assert all(s in cascade for s in seeds)
    # the index needs no network and says what it shows
    assert external_references(html) == []
    cared = "priority_rank" in run.customers
    for text in (f"{run.counts['customers']:,}", "Communities", "Backtest: lift",
                 "Customers to contact first" if cared else "Most influential customers"):
        assert text in html
    by = "priority_rank" if cared else "influence"
    top = run.customers.sort_values(by, ascending=cared)["customer_id"].iloc[0]
    assert f'href="customer-{top}.html"' in html
    if cared:  # the care step ran: its reasons and its plan are in the report
        reason = run.customers.set_index("customer_id").loc[top, "reason"]
        assert reason and str(reason).split()[0] in html
        assert 'id="plan"' in html


def test_report_uses_care_priority_and_reasons(run_dir: Path, tmp_path: Path) -> None:
    run = AnalysisRun.load(run_dir)
    customers = run.customers.copy()
    rng = np.random.default_rng(0)
    customers["priority"] = rng.random(len(customers))
    customers["priority_rank"] = customers["priority"].rank(ascending=False,
                                                            method="first").astype(int)
    customers["reason"] = [f"reason for {c}" for c in customers["customer_id"]]
    ordered = customers.sort_values("priority", ascending=False)
    plan = pd.DataFrame({"customer_id": ordered["customer_id"].head(5).to_numpy(),
                         "rank": np.arange(1, 6), "priority": ordered["priority"].head(5),
                         "gain": np.linspace(5, 1, 5), "protected": np.cumsum(
                             np.linspace(5, 1, 5)), "reason": "planned",
                         "community": ordered["community"].head(5),
                         "role": ordered["role"].head(5)})
    cared = AnalysisRun(**{**run.__dict__, "customers": customers,
                           "tables": {**run.tables, "care_plan": plan}})
    cared_dir = cared.save(tmp_path / "cared")
    index = write_report(cared_dir)
    assert index == cared_dir / "report" / "index.html"
    html = index.read_text()
    first = customers.sort_values("priority", ascending=False)["customer_id"].head(20)
    assert "Customers to contact first" in html
    positions = [html.index(f">{c}</a>") for c in first]
    assert positions == sorted(positions)  # in priority order
    assert f"reason for {first.iloc[0]}" in html
    views = {p.name for p in (cared_dir / "report").glob("customer-*.html")}
    assert views == {f"customer-{c}.html" for c in first}
    # the care plan section, in plan order, linking to the customers' views
    section = html[html.index('id="plan"'):html.index('id="communities"')]
    positions = [section.index(f'href="customer-{c}.html"') for c in plan["customer_id"]]
    assert positions == sorted(positions)
    # the reason shows on hover in the views too
    page = (cared_dir / "report" / f"customer-{first.iloc[0]}.html").read_text()
    assert f"reason for {first.iloc[0]}" in page


def test_rewriting_a_report_replaces_it(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    write_report(run_dir, out, max_customer_views=3, max_community_views=1)
    (out / "stale.html").write_text("old")
    write_report(run_dir, out, max_customer_views=2, max_community_views=1, cascade_seeds=0)
    assert not (out / "stale.html").exists()
    assert len(list(out.glob("customer-*.html"))) == 2
    assert not list(out.glob("cascade-*.html"))
    assert not list(tmp_path.glob(".r.*"))  # no temporary leftovers


def test_bad_backtest_input_is_named(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        write_report(run_dir, tmp_path / "x", backtest=tmp_path / "missing")
    bad = tmp_path / "lift_curve.csv"
    bad.write_text("score,fraction,lift\npriority,0.1,2\n")
    with pytest.raises(InvalidInputError, match=r"missing column.*captured"):
        write_report(run_dir, tmp_path / "x", backtest=bad)
    bad.write_text("score,fraction,lift,captured\npriority,0.1,2,0.2\npriority,x,2,0.2\n")
    with pytest.raises(InvalidInputError, match="line 3, column fraction"):
        write_report(run_dir, tmp_path / "x", backtest=tmp_path)
    assert not (tmp_path / "x").exists()


def test_plots_render_the_numbers(run_dir: Path, backtest_dir: Path) -> None:
    run = AnalysisRun.load(run_dir)
    fig = plots.community_sizes(run.tables["communities"]["size"])
    bars = fig.axes[0].patches
    assert sorted(b.get_height() for b in bars) == sorted(run.tables["communities"]["size"])
    fig = plots.exposure_distribution(run.customers)
    heights = [b.get_height() for b in fig.axes[0].patches]
    # stacked histogram: both layers' bars together count every customer with an exposure,
    # the second layer the customers with a recent churn or complaint
    assert sum(heights) == run.customers["exposure"].notna().sum()
    assert sum(heights[len(heights) // 2:]) == run.customers["exposure_seed"].sum()
    lift = plots.read_lift_curve(backtest_dir)
    fig = plots.lift_curve(lift)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert np.allclose(lines["priority"].get_ydata(), lift[lift.score == "priority"]["lift"])
    # several targets and cutoffs (as carenet backtest writes them): churn, last cutoff
    many = pd.concat([lift.assign(target=t, cutoff=c, lift=lift["lift"] * m)
                      for t, c, m in (("churn", "2026-01-01", 1.0), ("churn", "2026-03-01", 2.0),
                                      ("complaint", "2026-03-01", 3.0))])
    fig2 = plots.lift_curve(many)
    lines = {ln.get_label(): ln for ln in fig2.axes[0].get_lines()}
    assert np.allclose(lines["priority"].get_ydata(),
                       2.0 * lift[lift.score == "priority"]["lift"])
    assert "churn, cutoff 2026-03-01" in fig2.axes[0].get_title(loc="left")
    svg = plots.to_svg(fig)
    assert svg == plots.to_svg(fig)  # deterministic (no date)
    assert plots.data_uri(fig, fmt="png").startswith("data:image/png;base64,iVBOR")
    with pytest.raises(InvalidInputError):
        plots.influence_vs_pagerank(run.customers.drop(columns=["pagerank"]))
    care = pd.DataFrame({"strategy": ["plan", "plan", "random", "random"], "k": [10, 50, 10, 50],
                         "protected": [5.0, 9.0, 1.0, 3.0], "low": [4.0, 8.0, 0.5, 2.0],
                         "high": [6.0, 10.0, 1.5, 4.0]})
    fig = plots.care_comparison(care)
    heights = [b.get_height() for b in fig.axes[0].patches]
    assert heights == [5.0, 9.0, 1.0, 3.0]  # plan's bars, then random's, in k order


def test_cli_report_and_analyze_report(run_dir: Path, backtest_dir: Path,
                                       tmp_path: Path) -> None:
    out = tmp_path / "cli-report"
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(out), "--backtest",
                                 str(backtest_dir), "-q"])
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'index.html'}" in result.output.replace("\n", "")
    assert (out / "plots" / "lift.svg").exists()
    result = runner.invoke(app, ["report", str(tmp_path / "nothing"), "-q"])
    assert result.exit_code != 0 and "no run.json" in result.output

    inputs = run_dir.parent / "input"
    run_out = tmp_path / "analyzed"
    result = runner.invoke(app, [
        "analyze", str(inputs / "interactions.csv"), "--customers",
        str(inputs / "customers.csv"), "--events", str(inputs / "events.csv"), "--out",
        str(run_out), "--no-publish", "--report", "--epsilon", "0.3", "--exposure-runs", "200",
        "--seed-set-size", "5", "-q"])
    assert result.exit_code == 0, result.output
    index = run_out / "report" / "index.html"
    assert index.exists() and re.search(r"report: .*index\.html", result.output)
    assert (run_out / "report" / "community-map.html").exists()


def test_report_shows_a_real_backtests_lift_and_value_capture(run_dir: Path,
                                                               tmp_path: Path) -> None:
    """A backtest run and saved on disk -> the report has the lift and value-capture plot of
    the five scores, whose points at 5% and whose table are the backtest's own numbers.
    """
    import json

    from carenet.config import AnalysisConfig
    from carenet.evaluation.backtest import BacktestOptions, run_backtest
    from carenet.synthetic import GeneratorConfig, generate

    data = generate(GeneratorConfig(customers=400, interactions=7000, timestamps="epoch",
                                    seed=5))
    log = data.interactions
    t = log["timestamp"].to_numpy()
    cutoffs = [float(np.quantile(t, q)) for q in (0.55, 0.7)]
    fast = AnalysisConfig.from_mapping({
        "measures": {"measures": ["pagerank", "core"]},
        "influence": {"seed_set_size": 0, "exposure_runs": 200, "epsilon": 0.3}})
    res = run_backtest(log, cutoffs=cutoffs, options=BacktestOptions(horizon_days=20,
                                                                     min_class=3,
                                                                     resamples=50),
                       config=fast)
    bt_dir = tmp_path / "bt"
    res.save(bt_dir)
    meta = json.loads((bt_dir / "backtest.json").read_text())
    out = tmp_path / "report"
    html = write_report(run_dir, out, backtest=bt_dir).read_text()
    assert 'id="plot-backtest-value"' in html
    svg = (out / "plots" / "backtest-value.svg").read_text()
    embedded = [base64.b64decode(src.split(",", 1)[1]).decode() for src in _parse(html).imgs
                if src.startswith("data:image/svg+xml;base64,")]
    assert svg in embedded
    series = ("priority", "risk", "value", "degree", "pagerank")
    for name in series:
        assert f"<!-- {name} -->" in svg, name  # the legend's labels
    # the figure's curves at 5% are the backtest's value captured at 5% (backtest.json)
    fig = plots.value_capture_curves(plots.read_lift_curve(bt_dir))
    assert len(fig.axes) == 4  # lift and value captured, for each of the two cutoffs
    for j, cut in enumerate(meta["cutoffs"]):
        lines = {ln.get_label(): ln for ln in fig.axes[2 + j].get_lines()}
        assert set(series) <= set(lines)
        lifts = {ln.get_label(): ln for ln in fig.axes[j].get_lines()}
        capture = {c["score"]: c for c in cut["comparison"]["value_capture_5"]["scores"]}
        metric = {m["score"]: m for m in cut["metrics"] if m["target"] == "churn"}
        for name in series:
            x, y = lines[name].get_xdata(), lines[name].get_ydata()
            at5 = y[np.flatnonzero(np.isclose(x, 5.0))[0]]
            assert at5 == pytest.approx(100 * capture[name]["value_captured"], abs=1e-9)
            xl, yl = lifts[name].get_xdata(), lifts[name].get_ydata()
            assert yl[np.flatnonzero(np.isclose(xl, 5.0))[0]] == pytest.approx(
                metric[name]["lift_5"], abs=1e-9)
            # and the report's table quotes the same numbers
            row = (f"<tr><td>{cut['cutoff']}</td><td>{name}</td>"
                   f"<td class=\"num\">{metric[name]['lift_5']:.2f}</td>"
                   f"<td class=\"num\">{100 * capture[name]['value_captured']:.1f}%</td>")
            assert row in html, row
    # nothing fetched from the network
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
