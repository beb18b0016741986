"""Server memory under oversize request bodies, before and after the request guard.

Starts ``uvicorn --factory carenet.api.app:create_app`` on loopback (SQLite store, no worker),
sends ``--parallel`` (4) bodies of ``--mb`` (50) MB at once to ``POST /v1/keys`` *without a
key*, and reads the server process's peak resident memory (``VmHWM``) before and after. Each
body is streamed in 1 MiB chunks with a ``Content-Length`` header (``--chunked``: without it,
so only the streaming count can stop it).

"Before" is another source tree of carenet (e.g. a checkout of main without the guard), given
with ``--before PATH``; "after" is this tree. Each code base gets ``--repeat`` fresh servers.

    .venv/bin/python benchmarks/hardening.py --before /tmp/main13
    .venv/bin/python benchmarks/hardening.py --before /tmp/main13 --chunked

Prints a table and writes ``benchmarks/results/hardening.json``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def _body(mb: int) -> Any:
    chunk = b"x" * (1024 * 1024)
    head = b'{"role": "reader", "name": "'
    yield head
    for _ in range(mb):
        yield chunk
    yield b'"}'


def one(source: Path, *, mb: int, parallel: int, chunked: bool) -> dict[str, Any]:
    """One fresh server of the code in ``source``: peak memory before and after the bodies."""
    tmp = Path(tempfile.mkdtemp(prefix="carenet-hardening-"))
    port = _port()
    env = {**os.environ, "PYTHONPATH": str(source), "CARENET_DB": f"sqlite:///{tmp}/s.db",
           "CARENET_DATA_DIR": str(tmp / "data"), "CARENET_WORKER": "false",
           "CARENET_AUTH_FAILURE_RATE": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory",
                             "carenet.api.app:create_app", "--port", str(port),
                             "--log-level", "warning"], env=env, cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        time.sleep(0.5)
        idle = _rss(proc.pid)
        size = mb * 1024 * 1024 + 30
        statuses: list[int | str] = []
        lock = threading.Lock()

        def send() -> None:
            headers = {"Content-Type": "application/json"}
            if not chunked:
                headers["Content-Length"] = str(size)
            try:
                r = httpx.post(url + "/v1/keys", content=_body(mb), headers=headers,
                               timeout=120)
                code: int | str = r.status_code
            except httpx.HTTPError as exc:  # the server closed a refused upload early
                code = type(exc).__name__
            with lock:
                statuses.append(code)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=send) for _ in range(parallel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        time.sleep(0.3)
        after = _rss(proc.pid)
        return {"idle_rss_mb": idle["VmRSS"], "peak_rss_mb": after["VmHWM"],
                "growth_mb": after["VmHWM"] - idle["VmHWM"], "seconds": seconds,
                "statuses": sorted(map(str, statuses))}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="source tree of the code without the guard")
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunked", action="store_true")
    args = parser.parse_args()
    trees = ([("before", args.before)] if args.before else []) + [("after", ROOT)]
    rows = []
    for label, tree in trees:
        runs = [one(tree, mb=args.mb, parallel=args.parallel, chunked=args.chunked)
                for _ in range(args.repeat)]
        rows.append({"code": label, "tree": str(tree), "runs": runs,
                     "median_growth_mb": statistics.median(r["growth_mb"] for r in runs),
                     "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
                     "median_seconds": statistics.median(r["seconds"] for r in runs),
                     "statuses": runs[0]["statuses"]})
    load = os.getloadavg()
    print(f"{args.parallel} x {args.mb} MB bodies to POST /v1/keys without a key "
          f"({'chunked' if args.chunked else 'Content-Length'}); median of {args.repeat}; "
          f"load average {load[0]:.2f}")
    print(f"{'code':8} {'peak RSS MB':>12} {'growth MB':>10} {'seconds':>8}  statuses")
    for r in rows:
        print(f"{r['code']:8} {r['median_peak_rss_mb']:12.1f} {r['median_growth_mb']:10.1f} "
              f"{r['median_seconds']:8.2f}  {', '.join(r['statuses'])}")
    name = "hardening-chunked" if args.chunked else "hardening"
    write_json(name, {"machine": machine(), "load_average": load, "mb": args.mb,
                      "parallel": args.parallel, "chunked": args.chunked, "results": rows})


if __name__ == "__main__":
    main()
