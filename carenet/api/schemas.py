"""Wire schemas: what the API sends and accepts, separate from the core's result objects."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from carenet.api.settings import SIMULATION_RUNS_MAX

JsonValue = Any
RunId = Field(None, max_length=64, description="Run to read (default: the latest published)")


class CustomerPublic(BaseModel):
    """One customer's results in one run."""

    model_config = ConfigDict(extra="allow")

    run: str = Field(description="Id of the run these numbers come from")
    customer_id: str = Field(description="The customer id (a pseudonym when the run "
                             "pseudonymised ids)")
    community: str | None = Field(None, description="Community label, when computed")
    role: str | None = Field(None, description="hub, bridge, peripheral, ... when computed")
    priority: float | None = Field(None, description="Proactive-care priority, when computed")
    reason: JsonValue = Field(None, description="Why this priority, when computed")
    scores: dict[str, float | None] = Field(description="Every numeric measure of the run")
    percentiles: dict[str, float | None] = Field(
        description="Percentile rank (0-100) of each score among the run's customers")
    attributes: dict[str, JsonValue] = Field(description="Other columns (segment, dates, ...)")


class CustomerPage(BaseModel):
    """A page of a ranked customer list."""

    run: str
    sort: str = Field(description="Column the list is ranked by")
    order: Literal["asc", "desc"]
    items: list[CustomerPublic]
    next_cursor: str | None = Field(description="Pass as cursor= for the next page; null at "
                                    "the end")


class Neighbor(BaseModel):
    """One tie of a customer (both directions merged)."""

    customer_id: str
    weight: float = Field(description="Decayed, channel-weighted interaction volume")
    interactions: int
    channels: list[str]
    direction: Literal["out", "in", "both"]
    weight_out: float | None = None
    weight_in: float | None = None


class NeighborList(BaseModel):
    """A customer's strongest ties."""

    run: str
    customer_id: str
    items: list[Neighbor]


class CommunityPublic(BaseModel):
    """A community's summary, top customers and links to other communities."""

    model_config = ConfigDict(extra="allow")

    community: str
    size: int | float | None = None
    top_customers: list[dict[str, JsonValue]] = []
    ranked_by: str | None = None
    links: list[dict[str, JsonValue]] = []


class CommunityPage(BaseModel):
    """A page of communities, largest first."""

    run: str
    items: list[CommunityPublic]
    total: int
    next_cursor: str | None


class CommunityDetail(CommunityPublic):
    """One community, with the run it comes from."""

    run: str


class CarePlan(BaseModel):
    """The first ``budget`` customers of the run's care plan."""

    run: str
    budget: int
    available: int = Field(description="Rows in the run's plan (the largest budget it answers)")
    items: list[dict[str, JsonValue]]


class Progress(BaseModel):
    """How far a run got."""

    step: str | None = None
    done: float | None = None
    total: float | None = None
    fraction: float | None = Field(None, description="0..1, a rough estimate")


class RunPublic(BaseModel):
    """A run: status, progress, parameters, counts, timings and versions."""

    id: str
    status: Literal["queued", "running", "publishing", "published", "failed", "cancelled"]
    latest: bool = Field(description="Whether reads without run= use this run")
    kept: bool
    cancel_requested: bool = False
    created: str
    started: str | None = None
    finished: str | None = None
    published: str | None = None
    progress: Progress | None = None
    error: str | None = None
    request: dict[str, JsonValue] | None = None
    parameters: dict[str, JsonValue] | None = None
    counts: dict[str, JsonValue] | None = None
    timings: dict[str, JsonValue] | None = None
    versions: dict[str, JsonValue] | None = None
    summary: dict[str, JsonValue] | None = None
    columns: list[str] | None = Field(None, description="Per-customer columns of the run")
    tables: list[str] | None = None


class RunList(BaseModel):
    """Runs, newest first."""

    items: list[RunPublic]


class RunCreate(BaseModel):
    """Start an analysis of uploaded logs."""

    model_config = ConfigDict(extra="forbid")

    logs: list[str] = Field(min_length=1, max_length=50,
                            description="Ids of uploaded interaction logs (POST /v1/logs)")
    customers: str | None = Field(None, description="Id of an uploaded customers table")
    events: str | None = Field(None, description="Id of an uploaded events table")
    config: dict[str, JsonValue] = Field(
        default_factory=dict, description="Analysis settings, as in analysis.toml: seed, "
        "input, tables, graph sections")
    steps: list[str] | None = Field(None, description="Analysis steps to run (default: all)")
    keep: bool = Field(False, description="Never drop this run by retention")


class RunPatch(BaseModel):
    """Change a run's retention."""

    model_config = ConfigDict(extra="forbid")

    kept: bool


class UploadPublic(BaseModel):
    """A stored uploaded file."""

    id: str
    name: str
    bytes: int
    sha256: str
    created: str


class UploadList(BaseModel):
    """Uploads, newest first."""

    items: list[UploadPublic]


class KeyCreate(BaseModel):
    """Create an API key."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["reader", "analyst", "admin"]
    name: str = Field("", max_length=200)


class KeyPublic(BaseModel):
    """An API key (never its secret)."""

    id: str
    name: str
    role: str
    created: str
    revoked: str | None = None


class KeyCreated(KeyPublic):
    """A new key, with its secret shown this once."""

    key: str = Field(description="The secret; store it now, it cannot be shown again")


class KeyList(BaseModel):
    """Every API key."""

    items: list[KeyPublic]


class SimulationCreate(BaseModel):
    """A what-if cascade from seed customers, with some customers protected (e.g. the ones
    the care team would contact). Tie probabilities follow the run's influence settings.
    """

    model_config = ConfigDict(extra="forbid")

    seeds: list[str] = Field(min_length=1, max_length=10_000,
                             description="Customers where the cascade starts (raw or "
                             "pseudonymised ids)")
    protected: list[str] = Field(default_factory=list, max_length=100_000,
                                 description="Customers who never activate")
    model: Literal["ic", "lt", "sir"] = "ic"
    runs: int = Field(1000, ge=1, le=SIMULATION_RUNS_MAX, description="Simulated cascades "
                      f"(at most {SIMULATION_RUNS_MAX:,}; a server may lower this with "
                      "CARENET_MAX_SIMULATION_RUNS)")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Random seed: same seed, same "
                      "result; compare protected and unprotected with the same seed")
    recovery: float | None = Field(None, gt=0, le=1, description="SIR recovery probability "
                                   "per step (default: the run's influence.sir_recovery)")
    top: int = Field(20, ge=0, le=1000, description="Customers most likely reached to list")


class Reached(BaseModel):
    """A customer a simulated cascade reaches, with the probability and its interval."""

    customer_id: str
    probability: float
    low: float
    high: float


class SimulationPublic(BaseModel):
    """What the simulated cascades showed."""

    model_config = ConfigDict(extra="allow")

    run: str
    model: str
    edge_model: str
    runs: int
    seed: int
    recovery: float | None = None
    confidence: float
    seeds: list[str]
    protected: list[str]
    expected_size: float = Field(description="Expected activated customers, seeds included")
    std_error: float
    low: float
    high: float
    expected_reached: float = Field(description="Expected activated customers besides seeds")
    curve: list[float] = Field(description="Expected activated customers after each step")
    most_likely_reached: list[Reached]
    parameters: dict[str, float] = {}
    seconds: float


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    database: str | None = None
    latest_run: str | None = None
