"""Settings: one typed, frozen tree read from the environment at the edges only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _section(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, frozen=True, extra="ignore")


def _comma_separated(value: object) -> object:
    """A list from the environment, `a,b`, as its items; any other value as it is."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class DatabaseSettings(BaseSettings):
    """Where the ledger lives; unset means the embedded PostgreSQL."""

    model_config = _section("AUTOSTAMP_DATABASE_")

    url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "AUTOSTAMP_DATABASE_URL"),
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db.",
    )
    pool_size: int = Field(default=5, ge=1, description="Connections kept per process.")
    statement_timeout_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "Longest a statement of the worker, the dispatcher, the API's writes or the CLI "
            "may run, lock waits included; 0: no limit. Migrations have none."
        ),
    )
    embedded_port: int = Field(
        default=54329, ge=1, le=65535, description="Port of the embedded PostgreSQL."
    )


class TopicSettings(BaseSettings):
    """Kafka topic names and their partition count."""

    model_config = _section("AUTOSTAMP_TOPIC_")

    transactions: str = "transactions"
    dead_letter: str = "transactions-dead-letter"
    programs: str = "programs"
    payouts: str = "payouts"
    partitions: int = Field(default=4, ge=1, description="Partitions of the transactions topic.")


class KafkaSettings(BaseSettings):
    """The broker; unset means the embedded Tansu broker."""

    model_config = _section("AUTOSTAMP_KAFKA_")

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "AUTOSTAMP_KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Comma-separated host:port list.",
    )
    embedded_port: int = Field(
        default=59092, ge=1, le=65535, description="Port of the embedded broker."
    )
    consumer_group: str = Field(
        default="autostamp",
        description="The workers' consumer group; the programs agent uses it with -programs.",
    )
    topics: TopicSettings = Field(default_factory=TopicSettings)
    session_timeout_s: float = Field(default=30.0, gt=0, description="Consumer group session.")
    rebalance_timeout_s: float = Field(
        default=30.0, gt=0, description="How long the group waits for a member between polls."
    )
    heartbeat_interval_s: float = Field(default=3.0, gt=0, description="Group heartbeat.")
    batch_size: int = Field(
        default=2000, ge=1, description="Messages read at once; transactions per database commit."
    )
    batch_within_s: float = Field(default=0.1, gt=0, description="Longest wait to fill a batch.")
    commit_interval_s: float = Field(default=1.0, gt=0, description="Offset commit period.")
    relay_interval_s: float = Field(
        default=0.5, gt=0, description="How often payouts and dead letters are published."
    )


class RetrySettings(BaseSettings):
    """How long an infrastructure failure (database, broker) is retried before a worker stops."""

    model_config = _section("AUTOSTAMP_RETRY_")

    attempts: int = Field(default=8, ge=1, description="Tries of one unit of work, in all.")
    first_delay_s: float = Field(default=0.2, gt=0, description="Wait after the first failure.")
    max_delay_s: float = Field(
        default=10.0, gt=0, description="Longest wait between tries (each doubles until then)."
    )


class ApiSettings(BaseSettings):
    """The publisher API's bind address and limits."""

    model_config = _section("AUTOSTAMP_API_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body; larger ones get 413."
    )
    processes: int = Field(
        default=0, ge=0, description="API processes sharing the port; 0 starts one per CPU core."
    )
    connections_per_process: int = Field(
        default=4,
        ge=1,
        description=(
            "Database connections each API process keeps for its reads: about its requests a "
            "second times a query's round trip. More only adds PostgreSQL processes competing "
            "for the cores."
        ),
    )
    rate_limit_per_minute: int = Field(
        default=100,
        ge=1,
        description="Requests a key may make per minute, across all API processes and replicas.",
    )
    rate_limit_burst: int = Field(
        default=20,
        ge=0,
        description="Extra requests a rested key may make at once (its bucket holds 1 + burst).",
    )
    statement_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest one of the API's reads may run before it answers 503.",
    )
    request_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Longest a client may take to send a request, headers and body, from its first "
            "byte (or from connecting); then the connection is closed."
        ),
    )
    failed_auth_per_minute: int = Field(
        default=20,
        ge=1,
        description=(
            "Failed authentications a client address may make per minute, per API process; "
            "past that it is answered 429 before its key is looked up."
        ),
    )
    key_cache_s: float = Field(
        default=1.0,
        ge=0,
        le=1.0,
        description="How long a process trusts a key it checked; revocation takes this long.",
    )
    trusted_proxies: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = Field(
        default=(),
        description=(
            "Addresses or networks of the proxies in front of the API, comma-separated: from "
            "them, the client address is the right-most X-Forwarded-For entry that is not one "
            "of them. From any other peer the header is ignored."
        ),
    )

    _trusted_proxies_listed = field_validator("trusted_proxies", mode="before")(_comma_separated)


class MetricsSettings(BaseSettings):
    """Where the worker and the dispatcher serve their Prometheus metrics (the API serves its
    own at /metrics)."""

    model_config = _section("AUTOSTAMP_METRICS_")

    host: str = Field(default="127.0.0.1", description="Address the metrics ports bind to.")
    worker_port: int = Field(
        default=9101, ge=0, le=65535, description="The worker's metrics port; 0 serves none."
    )
    dispatcher_port: int = Field(
        default=9102, ge=0, le=65535, description="The dispatcher's metrics port; 0 serves none."
    )


class IngestSettings(BaseSettings):
    """HTTP ingestion (`POST /ingest.v1/transactions`): its limits and the broker's deadline."""

    model_config = _section("AUTOSTAMP_INGEST_")

    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest body of an ingestion request; larger ones get 413.",
    )
    max_items: int = Field(
        default=5000, ge=1, description="Most transactions in one ingestion request (else 413)."
    )
    ack_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Longest the API waits for the broker to acknowledge a request's transactions; "
            "then it answers 503 and reports none accepted."
        ),
    )


class ConsoleSettings(BaseSettings):
    """The console the API serves at /console."""

    model_config = _section("AUTOSTAMP_CONSOLE_")

    enabled: bool = Field(default=True, description="Serve the console at /console.")
    secure_cookie: bool = Field(
        default=True,
        description=(
            "Send the session cookie over HTTPS only. Browsers treat http://localhost and "
            "http://127.0.0.1 as secure; turn it off only to reach the console over plain HTTP "
            "from another machine, on a network you trust."
        ),
    )
    backtest_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest upload of the console's backtest; larger files need the CLI.",
    )


DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class WebhookSettings(BaseSettings):
    """How the dispatcher delivers webhooks."""

    model_config = _section("AUTOSTAMP_WEBHOOKS_")

    retry_schedule_s: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        default=DEFAULT_RETRY_SCHEDULE,
        min_length=1,
        description=(
            "Wait before each attempt, from the previous one (the first from the event): "
            "one attempt per entry, then the delivery is dead; about a day in all."
        ),
    )
    jitter: float = Field(
        default=0.2, ge=0, le=1, description="Each wait moves by up to this fraction, at random."
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(
        default=15.0, gt=0, description="Longest silence while waiting for the response."
    )
    request_timeout_s: float = Field(
        default=15.0, gt=0, description="Deadline of a whole attempt, however the server trickles."
    )
    max_retry_after_s: float = Field(
        default=86400.0, ge=0, description="Longest Retry-After (429, 503) that is honoured."
    )
    allowed_networks: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = Field(
        default=(),
        description=(
            "Networks endpoint URLs may point into besides public addresses, comma-separated "
            "(`127.0.0.0/8,::1/128`); plain http is accepted only to these. Metadata and "
            "link-local addresses stay refused whatever this says."
        ),
    )
    secret_grace_period_s: float = Field(default=86400.0, ge=0)
    held_while_disabled_s: float = Field(
        default=3 * 86400.0,
        ge=0,
        description=(
            "Events written while an endpoint is disabled are sent when it is enabled again "
            "if they are at most this old; older ones wait for a redeliver."
        ),
    )
    concurrency: int = Field(default=128, ge=1, description="Requests in flight per dispatcher.")
    concurrency_per_endpoint: int = Field(
        default=16, ge=1, description="Requests in flight to one endpoint, per dispatcher."
    )
    poll_interval_s: float = Field(
        default=0.1, gt=0, description="How often an idle dispatcher looks for due deliveries."
    )
    lease_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a claimed delivery is held before another dispatcher may take it.",
    )
    disable_after_s: float = Field(
        default=5 * 86400.0,
        ge=0,
        description=(
            "An endpoint whose attempts all fail for longer than this is disabled "
            "(any success starts the count again); 0 never disables for failures."
        ),
    )

    _allowed_networks_listed = field_validator("allowed_networks", mode="before")(_comma_separated)

    @model_validator(mode="after")
    def _lease_outlives_attempt(self) -> WebhookSettings:
        # A claim may wait for its endpoint's slot (one attempt) and then be sent (another);
        # a lease that ended before that would let a second dispatcher send it too.
        if self.lease_s <= 2 * self.request_timeout_s:
            raise ValueError("lease_s must be longer than twice request_timeout_s")
        return self


class Settings(BaseSettings):
    """Everything autostamp reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="AUTOSTAMP_", frozen=True, extra="ignore")

    state_dir: Path = Field(
        default=Path(".autostamp"),
        description="Where the embedded PostgreSQL keeps its data and the logs go.",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    default_currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description=(
            "The instance's currency (ISO 4217), given to a program's reward amount that names "
            "none when the program is applied. Unset: such a program is refused."
        ),
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Keys that seal webhook signing secrets in the database: 32 random bytes in "
            "url-safe base64, several separated by commas; the first seals, all open. Unset: "
            "generated once in the state directory for the embedded database, else required."
        ),
    )
    programs_signing_key: SecretStr | None = Field(
        default=None,
        description=(
            "Keys of the programs topic, comma-separated: the first signs what `programs apply` "
            "publishes, every one verifies what the worker applies. Unset: the embedded broker "
            "uses a key made under the state directory; a configured broker refuses to start."
        ),
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @property
    def embedded(self) -> bool:
        """True when either store is left to the embedded default."""
        return self.database.url is None or self.kafka.bootstrap_servers is None
