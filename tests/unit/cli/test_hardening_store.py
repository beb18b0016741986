"""A broken store through the CLI (issue 13): read-only, full disk, damaged file, database
server down. Each is one line on stderr, never a traceback; ``analyze`` checks the store
before computing; ``keys list`` reads a read-only store.

The commands run as real subprocesses. Permission bits do not bind root, so when the tests
run as root the subprocess drops the two capabilities that bypass them (CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH) from its bounding set first: it then meets the permissions any other
user would.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servicekit import BACKENDS, fresh_db

from carenet.store import RunStore

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"
# Real subprocesses (~1-5 s each): in `make test`, not in the `make test-fast` loop.
pytestmark = pytest.mark.slow


def _drop_dac() -> None:
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _file_limit(size: int) -> Callable[[], None]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def carenet(*args: str, cwd: Path, preexec: Callable[[], None] | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "carenet.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=preexec)


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error:"), lines
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "store"
    folder.mkdir()
    db = folder / "store.db"
    store = RunStore(str(db))
    store.create_key("reader", "kept key")
    store.close()
    yield db
    folder.chmod(0o755)
    db.chmod(0o644)


def test_read_only_directory_keys_list_reads_keys_create_is_one_line(sqlite_store: Path,
                                                                     tmp_path: Path) -> None:
    sqlite_store.chmod(0o444)
    sqlite_store.parent.chmod(0o555)
    listed = carenet("keys", "list", "--db", str(sqlite_store), cwd=tmp_path,
                     preexec=_drop_dac)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "kept key" in listed.stdout and "reader" in listed.stdout
    created = carenet("keys", "create", "--db", str(sqlite_store), cwd=tmp_path,
                      preexec=_drop_dac)
    one_line_error(created, "read-only", str(sqlite_store))
    assert sorted(p.name for p in sqlite_store.parent.iterdir()) == ["store.db"]


def test_full_disk_while_publishing_is_one_line(sqlite_store: Path, tmp_path: Path) -> None:
    log = tmp_path / "small.csv"  # 3,000 interactions: a run of ~1 MB in the store
    log.write_text("".join((SAMPLE / "interactions.csv").read_text().splitlines(True)[:3001]))
    size = sqlite_store.stat().st_size
    # files may grow to 1.5 MB: the run directory is written, the store's file cannot take it
    result = carenet("analyze", str(log), "--db", str(sqlite_store), "--out",
                     str(tmp_path / "run"), "-q", cwd=tmp_path, preexec=_file_limit(1_500_000))
    one_line_error(result, "disk is full", str(sqlite_store))
    assert (tmp_path / "run" / "run.json").exists()  # computed and saved; only publishing failed
    store = RunStore(str(sqlite_store))  # the store is intact and holds no half run
    assert [k["name"] for k in store.list_keys()] == ["kept key"]
    assert store.latest_id() is None and sqlite_store.stat().st_size < size + 1_500_000
    store.close()


def test_damaged_sqlite_file_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    db.write_bytes(b"this is not a database, it was overwritten\n" * 200)
    for command in (["keys", "list"], ["analyze", str(SAMPLE / "events.csv")]):
        result = carenet(*command, "--db", str(db), cwd=tmp_path)
        one_line_error(result, "damaged", "restore it from a backup")


def test_database_server_not_answering_is_one_line(tmp_path: Path) -> None:
    with socket_closed_port() as port:
        url = f"postgresql://carenet@127.0.0.1:{port}/carenet?connect_timeout=5"
        result = carenet("keys", "list", "--db", url, cwd=tmp_path)
        one_line_error(result, "does not answer", f"127.0.0.1:{port}")


class socket_closed_port:  # noqa: N801 - a context manager used like a function
    """A loopback port nobody listens on (bound, never listening, so nobody else gets it)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_analyze_checks_the_store_first_on_every_backend(backend: str, tmp_path: Path) -> None:
    with fresh_db(backend, tmp_path) as url:
        RunStore(url).close()
        if backend == "sqlite":
            db = tmp_path / "store.db"
            db.chmod(0o444)
            preexec: Callable[[], None] | None = _drop_dac
        else:  # a read-only session (a replica, or default_transaction_read_only)
            url += "%20-cdefault_transaction_read_only%3Don"
            preexec = None
        out = tmp_path / "run"
        result = carenet("analyze", str(SAMPLE / "interactions.csv"), "--db", url, "--out",
                         str(out), "-q", cwd=tmp_path, preexec=preexec)
        one_line_error(result, "read-only")
        assert not out.exists()
        if backend == "sqlite":
            (tmp_path / "store.db").chmod(stat.S_IRUSR | stat.S_IWUSR)
