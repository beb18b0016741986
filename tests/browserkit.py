"""Helpers for driving the served pages in Debian's headless Chromium with Playwright.

Used by tests/browser/test_pages_browser.py and by benchmarks/views.py (load times, README
screenshots). Playwright's own browser download needs a CDN that CI machines cannot reach, so
the system Chromium is launched by path (``scripts/ensure-chromium.sh`` installs it).
"""

from __future__ import annotations

import dataclasses
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

CHROMIUM = os.environ.get("CARENET_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTRUCTION = (f"the browser tests need Chromium at {CHROMIUM}: run `make chromium` (as root it "
               "installs Debian's package) or `sudo apt-get install -y chromium`, or set "
               "CARENET_CHROMIUM")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

# Installed before any page script runs: when a view publishes window.carenetView, hook its
# vis.js network so that the time of its first drawing (ms since navigation start) is known
# without the view's cooperation.
TIMING_SCRIPT = """
(() => {
  let view;
  window.__carenet = {drawnAt: null, stabilizedAt: null, draws: 0};
  Object.defineProperty(window, "carenetView", {
    configurable: true,
    get() { return view; },
    set(v) {
      view = v;
      const net = v && v.network;
      if (net && net.on) {
        net.on("afterDrawing", () => {
          window.__carenet.draws += 1;
          if (window.__carenet.drawnAt === null) {
            window.__carenet.drawnAt = performance.now();
          }
        });
        net.on("stabilizationIterationsDone", () => {
          if (window.__carenet.stabilizedAt === null) {
            window.__carenet.stabilizedAt = performance.now();
          }
        });
      }
    },
  });
})();
"""


def chromium_path() -> str:
    """The Chromium binary, or an AssertionError with the one-line instruction."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(INSTRUCTION)
    return CHROMIUM


def launch(playwright: Any) -> Any:
    """Headless Chromium, no network side channels (no component updates, sync, QUIC)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=ARGS)


@dataclass
class Watch:
    """What a page did that it must not: console errors, uncaught exceptions, requests to
    anything but this machine, failed requests."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Watch:
        """Start watching ``page``; returns self."""
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("request", self._request)
        page.on("requestfailed", lambda req: self.failed.append(f"{req.url}: {req.failure}"))
        return self

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.console_errors.append(f"{msg.text} @ {msg.location}")

    def _request(self, req: Any) -> None:
        self.requests.append(req.url)
        parts = urlsplit(req.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if parts.hostname not in LOCAL_HOSTS:
            self.foreign.append(req.url)

    def problems(self) -> dict[str, list[str]]:
        """Everything wrong so far (empty lists when all is well)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "requests" and v}

    def clear(self) -> None:
        """Forget what was seen (between pages)."""
        for f in dataclasses.fields(self):
            getattr(self, f.name).clear()


def login(page: Any, base_url: str, key: str) -> None:
    """Log in through the form (the page ends on the dashboard)."""
    page.goto(f"{base_url}/login")
    page.fill("#key", key)
    with page.expect_navigation():
        page.click("#login button[type=submit]")


def pixels(png: bytes) -> np.ndarray:
    """RGB pixels of a PNG screenshot."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def drawn(png: bytes) -> tuple[int, float]:
    """(distinct colours, share of pixels differing from the most common one) of a
    screenshot: a blank canvas has one colour and share 0."""
    px = pixels(png).reshape(-1, 3)
    colours, counts = np.unique(px, axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    share = float(np.mean(np.any(px != background, axis=1)))
    return len(colours), share


def node_point(page: Any, node_id: Any) -> tuple[float, float]:
    """Page coordinates of a node of the view's vis.js network (scrolled into view)."""
    page.locator("#graph").scroll_into_view_if_needed()
    xy = page.evaluate(
        """(id) => {
          const v = window.carenetView;
          const pos = v.network.getPositions([id])[id];
          const dom = v.network.canvasToDOM(pos);
          const box = document.querySelector("#graph canvas").getBoundingClientRect();
          return [box.left + dom.x, box.top + dom.y];
        }""", node_id)
    return float(xy[0]), float(xy[1])


def visible_nodes(page: Any) -> list[Any]:
    """Ids of the network's nodes whose centre lies inside the canvas, most central first."""
    return page.evaluate(  # type: ignore[no-any-return]
        """() => {
          const v = window.carenetView;
          const canvas = document.querySelector("#graph canvas");
          const w = canvas.clientWidth, h = canvas.clientHeight;
          const ids = v.nodes.getIds();
          const pos = v.network.getPositions(ids);
          const inside = [];
          for (const id of ids) {
            const d = v.network.canvasToDOM(pos[id]);
            if (d.x > 10 && d.y > 10 && d.x < w - 10 && d.y < h - 10) {
              inside.push([Math.hypot(d.x - w / 2, d.y - h / 2), id]);
            }
          }
          inside.sort((a, b) => a[0] - b[0]);
          return inside.map((p) => p[1]);
        }""")
