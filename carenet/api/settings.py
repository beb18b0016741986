"""Service settings: environment variables ``CARENET_*`` (pydantic-settings), overridable in
:func:`carenet.api.app.create_app` for tests and embedding.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from carenet.store.db import data_home, default_db_url, normalize_url, sqlite_path

SIMULATION_RUNS_MAX = 10_000
"""Cascade runs one what-if simulation may ask for: the one number of the API's schema, the
cascade page and ``max_simulation_runs`` (which may lower it, not raise it)."""


class Settings(BaseSettings):
    """Everything the service can be told; each field is also ``CARENET_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="CARENET_", extra="ignore")

    db: str = Field(default_factory=default_db_url,
                    description="Store URL: a SQLite file (default) or postgresql://...")
    data_dir: Path | None = Field(
        default=None, description="Where uploaded logs are kept (default: next to the SQLite "
        "file, else $CARENET_HOME/uploads).")
    keep_runs: int = Field(default=5, ge=1,
                           description="Published runs kept (kept runs excepted).")
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1,
                                  description="Largest accepted log upload.")
    rate_limit: float = Field(default=200.0, ge=0, description="Requests per second per API key "
                              "(token bucket; 0 disables).")
    rate_burst: int = Field(default=400, ge=1, description="Requests a key may send at once.")
    key_cache_seconds: float = Field(default=5.0, ge=0, description="How long a verified key is "
                                     "trusted without asking the store (revocation delay).")
    latest_ttl: float = Field(default=0.2, ge=0, description="How long the id of the latest run is "
                              "cached (0: look it up on every read).")
    worker: bool = Field(default=True, description="Run queued analyses in worker processes.")
    max_concurrent_runs: int = Field(default=1, ge=1, description="Analyses computed at once.")
    poll_seconds: float = Field(default=0.5, gt=0,
                                description="How often the worker looks for work.")
    stale_after: float = Field(default=60.0, gt=0, description="A running run without a heartbeat "
                               "for this long is marked failed.")
    max_simulation_runs: int = Field(default=10_000, ge=1, le=SIMULATION_RUNS_MAX,
                                     description="Cap on cascade runs per what-if "
                                     f"simulation (at most {SIMULATION_RUNS_MAX:,}).")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest request "
                                "body outside uploads (refused with 413 before it is read).")
    max_concurrent_simulations: int = Field(default=2, ge=1, description="What-if simulations "
                                            "(API and cascade page) computed at once by a "
                                            "server process; more wait briefly, then 503.")
    simulation_wait_seconds: float = Field(default=2.0, ge=0, le=60, description="How long a "
                                           "simulation waits for a free slot before the 503.")
    max_queued_runs_per_key: int = Field(default=3, ge=1, description="Queued runs one API key "
                                         "may have waiting (429 beyond).")
    max_queued_runs: int = Field(default=20, ge=1, description="Queued runs in the whole store "
                                 "(429 beyond).")
    session_secret: str | None = Field(default=None, description="Secret that signs session "
                                       "cookies (default: generated once into a 0600 file "
                                       "next to the store, see carenet.api.sessions).")
    auth_failure_rate: float = Field(default=1.0, ge=0, description="Failed logins and "
                                     "unauthenticated requests per second per client address, "
                                     "after a burst (0 disables the throttle).")
    auth_failure_burst: int = Field(default=20, ge=1, description="Failed logins and "
                                    "unauthenticated requests a client address may send at once.")
    session_hours: float = Field(default=12.0, gt=0, description="How long a browser session "
                                 "of the served pages lasts after logging in.")
    view_cache_runs: int = Field(default=2, ge=1, description="Runs whose whole customer table "
                                 "and graph each server process keeps for the views.")
    view_cache_pages: int = Field(default=64, ge=1, description="Rendered view pages each server "
                                  "process keeps.")

    def upload_dir(self) -> Path:
        """The directory uploads are written to."""
        return self.data_root() / "uploads"

    def data_root(self) -> Path:
        """The service's own files: ``data_dir``, else next to the SQLite file, else
        ``$CARENET_HOME``.
        """
        if self.data_dir is not None:
            return Path(self.data_dir)
        path = sqlite_path(normalize_url(self.db))
        if path is not None:
            return path.parent
        return data_home()

    def secret_file(self) -> Path:
        """Where the generated session secret is kept (mode 0600) when
        ``CARENET_SESSION_SECRET`` is not set.
        """
        return self.data_root() / "session.secret"
