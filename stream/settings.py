"""Settings: one frozen object built from LEADSTREAM_* variables and command-line flags."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.errors import SettingsError
from stream.redact import redact_url
from stream.times import parse_duration

ENV_PREFIX = "LEADSTREAM_"
REMOVED = {
    "LEADSTREAM_WORKER_INPUT": "the worker has one input path now, the consume loop with its "
    "own stores (docs/worker.md); it keeps the state the Faust path left in the changelogs",
    "LEADSTREAM_WORKER_BATCH_MAX": "it sized the Faust path's batches; the consume loop's "
    "checkpoint is sized by LEADSTREAM_WORKER_CHECKPOINT_MAX",
}
PROCESSES = ("collector", "worker", "notifier")


def _doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field carrying its help text, shown by `--help` and `leadstream settings`."""
    return field(metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class Settings:
    """Everything a leadstream process can be told; read once, handed down, never global."""

    kafka_bootstrap: str = _doc(
        "Kafka bootstrap servers, host:port[,host:port].", default="127.0.0.1:19092"
    )
    topic_prefix: str = _doc("Prefix for every topic name (e.g. 'staging.').", default="")
    partitions: int = _doc(
        "Partitions of the event, by-lead and handoff topics; co-partitioned topics must match.",
        default=4,
    )
    redis_url: str = _doc(
        "Redis URL for lead snapshots and idempotency keys.", default="redis://127.0.0.1:16379/0"
    )
    redis_prefix: str = _doc("Prefix of every Redis key leadstream writes.", default="leadstream:")

    collector_host: str = _doc("Collector listen address.", default="127.0.0.1")
    collector_port: int = _doc(
        "Collector public HTTP port: ingest only (Segment API, pixel, redirect, webhooks, health).",
        default=8080,
    )
    write_keys: str = _doc(
        "Accepted write keys as key=source:kind pairs, comma separated (kind: browser|server); "
        "no default: `leadstream dev up` writes development keys, production sets its own "
        "(random, 128 bits or more each: `openssl rand -hex 24`).",
        default="",
    )
    max_event_bytes: int = _doc("Largest accepted single event, bytes.", default=32 * 1024)
    max_request_bytes: int = _doc(
        "Largest accepted request body (after gzip), bytes.", default=500 * 1024
    )
    max_batch_events: int = _doc("Most events in one batch request.", default=2500)
    rate_limit_per_second: float = _doc(
        "Events per second allowed per write key (0 = off).", default=0.0
    )

    mapping_path: str = _doc(
        "Collector mapping YAML (page URL patterns, event names, traits); empty = packaged "
        "default. Sections in the file replace the default's sections.",
        default="",
    )
    pixel_cookie: str = _doc(
        "Name of the first-party anonymous-id cookie the pixel sets (empty = no cookie).",
        default="",
    )
    pixel_cookie_days: int = _doc("Lifetime of the pixel's cookie, days.", default=365)
    redirect_allow_hosts: str = _doc(
        "Hosts (with their subdomains) that the click redirect /v1/r may send to, comma separated.",
        default="",
    )
    sendgrid_public_key: str = _doc(
        "SendGrid event-webhook verification key (base64 DER or PEM); empty = webhook off.",
        default="",
    )
    mailgun_signing_key: str = _doc("Mailgun webhook signing key; empty = webhook off.", default="")
    generic_webhook_secret: str = _doc(
        "HMAC secret of /v1/webhooks/generic (social engagement); empty = webhook off.", default=""
    )
    webhook_tolerance_seconds: float = _doc(
        "Refuse webhook signatures whose timestamp is further than this from now, seconds; "
        "tokens and ids are remembered for twice as long (replay protection).",
        default=300.0,
    )
    produce_timeout_seconds: float = _doc(
        "How long the collector waits for Kafka acks before answering 503.", default=10.0
    )

    worker_port: int = _doc("Worker web port (/metrics, /healthz, /readyz).", default=6066)
    data_dir: str = _doc("Worker state directory (RocksDB tables).", default=".leadstream/worker")
    model_path: str = _doc(
        "Scoring model file; empty means the packaged default-b2b model.", default=""
    )
    shadow_model: str = _doc(
        "A candidate model file the worker scores beside the live model on every event, "
        "writing its transitions to leads.shadow only (never a handoff, sink or Redis); "
        "empty: no shadow. Compare with `leadstream whatif --from-topic leads.shadow`.",
        default="",
    )
    rocksdb_block_cache_mib: int = _doc(
        "The block cache every store of the worker shares (recently read table blocks), MiB.",
        default=16,
    )
    rocksdb_write_buffer_mib: int = _doc(
        "Largest memtable of one table of one partition before it is flushed to disk, MiB; "
        "all of them together stay within LEADSTREAM_ROCKSDB_MEMTABLES_MIB.",
        default=4,
    )
    rocksdb_memtables_mib: int = _doc(
        "Memory the memtables of all the worker's stores may hold together (RocksDB's write "
        "buffer manager flushes past it), MiB. Each store's write-ahead log is kept within "
        "it too, so a restart after a crash replays at most that much.",
        default=32,
    )
    worker_state_cache: int = _doc(
        "Lead states the worker keeps decoded between batches (about 3.5 KB each): more "
        "saves decoding busy leads again, fewer holds less memory "
        "(gauge leadstream_worker_states_cached).",
        default=10_000,
    )
    worker_checkpoint_max: int = _doc(
        "Most records processed before a checkpoint lands (outputs, "
        "changelog records, stores, offsets) while more are waiting; with none waiting it "
        "lands at once. Larger shares the acknowledgement round trips across more records.",
        default=5000,
    )
    worker_instance_id: str = _doc(
        "Static group membership: a name unique to this worker that stays the same across "
        "its restarts (e.g. a StatefulSet pod name). A restart within the session timeout "
        "then keeps its partitions without a rebalance; a stopped worker's partitions wait "
        "for that timeout instead of moving at once. Empty: dynamic membership.",
        default="",
    )
    worker_order_wait_ms: float = _doc(
        "Longest a record waits for another input topic of its partition that is behind, so "
        "that one person's events across topics apply in the order the collector accepted "
        "them (docs/worker.md); after it the record goes anyway, counted. A bound for an "
        "input that is stuck, not a latency knob: a caught-up input releases at once, and "
        "on a busy machine a start-up backlog keeps an input behind for seconds.",
        default=10_000.0,
    )
    worker_merge_timeout_seconds: float = _doc(
        "Longest a lead's events wait behind an identify whose visitor history comes from "
        "another partition; after it they apply and the history joins when it arrives.",
        default=30.0,
    )
    identity_secret: str = _doc(
        "Secret of the keyed hash that email-only visitors' lead ids carry instead of the "
        "address. Required by the collector and the worker (24+ random characters; "
        "leadstream dev/demo set their own): the same on every collector and worker, and "
        "never changed once leads exist.",
        default="",
    )
    idle_tick_seconds: float = _doc(
        "After this many idle seconds a partition's stream time follows the wall clock so daily "
        "ticks fire without traffic (0 = never: deterministic tests and replays).",
        default=60.0,
    )

    notifier_port: int = _doc("Notifier metrics port.", default=6067)
    webhook_url: str = _doc("Webhook that receives handoffs (empty = log only).", default="")
    webhook_secret: str = _doc(
        "Standard Webhooks secret (whsec_<base64>); a second one, space separated, is accepted "
        "during rotation.",
        default="",
    )
    delivery_attempts: int = _doc(
        "Quick delivery attempts in the notifier process (the first included) before a handoff "
        "is parked on the delivery schedule (or dead-lettered when the schedule is empty).",
        default=3,
    )
    delivery_backoff_seconds: float = _doc(
        "Bound of the first quick retry's delay; doubles per retry, full jitter.", default=0.5
    )
    delivery_timeout_seconds: float = _doc("Timeout of one delivery attempt.", default=5.0)
    allow_private_urls: bool = _doc(
        "Allow webhook URLs on loopback/private addresses (local development only).",
        default=False,
    )

    slack_webhook_url: str = _doc("Slack incoming-webhook URL (empty = no Slack sink).", default="")
    crm_task_url: str = _doc("CRM-task webhook URL (empty = no CRM sink).", default="")
    crm_token: str = _doc("Bearer token sent to the CRM-task webhook.", default="")
    smtp_host: str = _doc("SMTP relay for email handoffs (empty = no email sink).", default="")
    smtp_port: int = _doc("SMTP port.", default=25)
    smtp_from: str = _doc("Sender address of handoff emails.", default="leadstream@localhost")
    smtp_to: str = _doc("Recipients of handoff emails, comma separated.", default="")
    smtp_username: str = _doc("SMTP login (optional).", default="")
    smtp_password: str = _doc("SMTP password (optional).", default="")
    smtp_starttls: bool = _doc("Use STARTTLS with the SMTP relay.", default=False)
    lead_link_template: str = _doc(
        "Link to a lead in Slack, email and CRM tasks, with {lead_id}.", default=""
    )
    routes_path: str = _doc(
        "Notifier routes file (YAML/JSON); empty = every handoff to LEADSTREAM_NOTIFIER_SINKS, "
        "else to the webhook.",
        default="",
    )
    notifier_handoffs: str = _doc(
        "Which handoffs the sales sinks (webhook, slack, email, crm) get: `sales` = sales "
        "transitions only (with a route or an SLA, an SLA breach, or into or out of mql, "
        "sales_ready, sql, opportunity, customer), `all` = every stage change (anonymous -> "
        "lead identifies too). The handoff topic carries all of them either way.",
        default="sales",
    )
    notifier_sinks: str = _doc(
        "Sinks of every handoff when there is no routes file, comma separated (webhook, slack, "
        "email, crm, log). Empty: `webhook` when LEADSTREAM_WEBHOOK_URL is set; without it the "
        "notifier refuses to start (it would take its group's partitions and deliver nothing). "
        "`log` runs it on purpose without a sales sink (development).",
        default="",
    )
    fast_lane_concurrency: int = _doc("Concurrent P1 (fast-lane) deliveries.", default=8)
    routine_lane_concurrency: int = _doc("Concurrent P2/P3 deliveries.", default=8)
    max_pending: int = _doc(
        "Unsettled handoffs held before the notifier pauses fetching.", default=10_000
    )
    max_backoff_seconds: float = _doc(
        "Longest pause between quick retries, seconds: caps the exponential backoff, and a "
        "Retry-After longer than it parks the handoff on the schedule instead of holding a "
        "lane slot.",
        default=30.0,
    )
    # -- notifier: delivery schedule and the knobs of NotifierConfig (issues 12 and 13) --
    delivery_schedule: str = _doc(
        "Delays of the persisted delivery retries after the quick attempts failed, comma "
        "separated, each a number with s, m, h or d (e.g. 5s,5m,30m,2h,5h,10h: six more "
        "attempts over ~17.6 h); a handoff is dead-lettered only when they are spent. "
        "Empty = no schedule: dead letter right after the quick attempts.",
        default="5s,5m,30m,2h,5h,10h",
    )
    delivery_schedule_poll_seconds: float = _doc(
        "How often each notifier looks for scheduled deliveries that are due, seconds.",
        default=1.0,
    )
    delivery_max_retry_after_seconds: float = _doc(
        "Longest receiver Retry-After honoured, seconds; a longer one is cut to this.",
        default=900.0,
    )
    notifier_claim_ttl_seconds: float = _doc(
        "Life of a notifier's in-flight claim on a delivery (renewed while it works, at least "
        "the delivery timeout + 5 s): how soon another notifier takes over from a dead one.",
        default=60.0,
    )
    notifier_delivered_ttl_seconds: int = _doc(
        "How long a delivered ce_id is remembered per sink (a redelivery within it is a no-op).",
        default=30 * 24 * 3600,
    )
    notifier_delivery_log_size: int = _doc(
        "Delivery-log entries kept per lead (lead API, CLI).", default=100
    )
    notifier_commit_interval_seconds: float = _doc(
        "How often the notifier commits the offsets of settled handoffs, seconds.", default=1.0
    )
    notifier_lag_interval_seconds: float = _doc(
        "How often the notifier exports its consumer group's lag as a metric, seconds.",
        default=15.0,
    )
    # -- security and delivery (issue 12): surfaces, credentials, timeouts, schedules --
    collector_internal_host: str = _doc(
        "Listen address of the collector's internal listener (lead API, /metrics); keep it "
        "on loopback or a private network.",
        default="127.0.0.1",
    )
    collector_internal_port: int = _doc(
        "Port of the collector's internal listener (lead API, /metrics).", default=8081
    )
    lead_api_tokens: str = _doc(
        "Bearer tokens of the lead API as token:scope pairs, comma separated (scope: read, or "
        "admin = read + re-drives); 24 characters or more each; empty = lead API refuses all.",
        default="",
    )
    snapshot_marks: bool = _doc(
        "The lead API answers 503 (reason snapshots_lost), not 404, for a lead or account it "
        "cannot find while Redis lacks the worker's mark of some partition: Redis lost its "
        "data (or no worker has written to it yet) and the workers have not written every "
        "snapshot back yet; each worker checks its partitions' marks at every snapshot flush "
        "and writes back what Redis lost (stream/store/marks.py). Same value for the "
        "collector and the workers.",
        default=True,
    )
    cors_origins: str = _doc(
        "Origins whose browsers may post to the ingest routes, comma separated "
        "(https://www.example.com); '*' allows any origin without credentials; empty = none.",
        default="",
    )
    header_timeout_seconds: float = _doc(
        "Time a client has to send a request's headers (after connecting or after the "
        "previous response) before the collector closes the connection.",
        default=10.0,
    )
    body_timeout_seconds: float = _doc(
        "Time a client has to send a request body; a slower one is answered 408 and cut off.",
        default=30.0,
    )
    refused_deadletters_per_minute: float = _doc(
        "Dead letters written per client address and minute for refused webhook signatures; "
        "beyond it refusals are only counted (leadstream_collector_refusals_unrecorded_total).",
        default=10.0,
    )
    collector_dedupe_seconds: float = _doc(
        "How long the collector remembers a message id in Redis (transport dedupe shared by "
        "every collector process), seconds.",
        default=24 * 3600.0,
    )
    collector_access_log: bool = _doc(
        "One log line per collector request on the `leadstream.access` logger, both listeners "
        "(method, route pattern, status, bytes, duration, client address, user agent, "
        "X-Request-Id); never a query string, header value or body. Health probes and "
        "/metrics scrapes that succeed are logged at debug. false = no access log.",
        default=True,
    )

    metrics_host: str = _doc(
        "Listen address of the worker's and notifier's /metrics (0.0.0.0 in containers).",
        default="127.0.0.1",
    )

    dev_dir: str = _doc(
        "Where `leadstream dev` keeps Kafka, Redis, logs and pid files.", default=".leadstream/dev"
    )
    kafka_version: str = _doc(
        "Apache Kafka release `leadstream dev` resolves from Maven Central.", default="4.1.1"
    )
    kafka_controller_port: int = _doc("KRaft controller port of the dev broker.", default=19093)
    kafka_heap: str = _doc("Heap of the dev broker (-Xmx).", default="768m")
    log_level: str = _doc("Log level: debug, info, warning, error.", default="info")
    log_format: str = _doc(
        "Log lines as `text` (for people) or `json` (one object per line: time, level, logger, "
        "message, process, exc) in every process, Faust's and aiokafka's loggers included.",
        default="text",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read LEADSTREAM_* variables; explicit overrides (CLI flags) win; values are checked."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if f.name in overrides and overrides[f.name] is not None:
                values[f.name] = overrides[f.name]
            elif name in env:
                values[f.name] = _parse(name, env[name], f.type)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SettingsError(f"unknown settings {sorted(unknown)}")
        settings = cls(**values)
        settings.check()
        return settings

    def check_for(self, process: str) -> None:
        """Raise what `process` (collector, worker, notifier) refuses at startup, for
        `leadstream settings --check --for`: credentials, the mapping, the model, the sinks.

        These are the functions each process calls before it listens or consumes, called here,
        not copied, so the check cannot pass what the process then refuses. Nothing connects to
        Kafka, Redis or a receiver. Imported when called: they import this module.
        """
        if process == "collector":
            from stream.collector.mapping import load_mapping
            from stream.credentials import check_collector

            check_collector(self)
            load_mapping(self.mapping_path or None)
        elif process == "worker":
            from stream.credentials import check_identity_secret
            from stream.scoring.model import load_model

            check_identity_secret(self)
            load_model(self.model_path or None)
            if self.shadow_model:
                load_model(self.shadow_model)
        elif process == "notifier":
            from stream.notify.service import Notifier

            Notifier(self)
        else:
            raise SettingsError(f"no process {process!r}: want {', '.join(PROCESSES)}")

    def replace(self, **changes: Any) -> Settings:
        settings = dataclasses.replace(self, **changes)
        settings.check()
        return settings

    def check(self) -> None:
        """Fail early with a message that names the variable and the fix."""
        for host_port in self.kafka_bootstrap.split(","):
            host, _, port = host_port.strip().rpartition(":")
            if not host or not port.isdigit():
                raise SettingsError(
                    f"{ENV_PREFIX}KAFKA_BOOTSTRAP={self.kafka_bootstrap!r}: "
                    "want host:port[,host:port]"
                )
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            shown = redact_url(self.redis_url, keep_path=True)  # never its password
            raise SettingsError(
                f"{ENV_PREFIX}REDIS_URL={shown!r}: want redis://[:password@]host:port/db"
            )
        if self.log_format not in ("text", "json"):
            raise SettingsError(f"{ENV_PREFIX}LOG_FORMAT={self.log_format!r}: want text or json")
        if self.worker_checkpoint_max < 1:
            raise SettingsError(
                f"{ENV_PREFIX}WORKER_CHECKPOINT_MAX={self.worker_checkpoint_max}: want 1 or more"
            )
        if self.partitions < 1:
            raise SettingsError(f"{ENV_PREFIX}PARTITIONS={self.partitions}: want 1 or more")
        rocksdb = ("rocksdb_block_cache_mib", "rocksdb_write_buffer_mib", "rocksdb_memtables_mib")
        for name in rocksdb:
            if getattr(self, name) < 1:
                raise SettingsError(
                    f"{ENV_PREFIX}{name.upper()}={getattr(self, name)}: want 1 MiB or more"
                )
        if self.worker_state_cache < 0:
            raise SettingsError(
                f"{ENV_PREFIX}WORKER_STATE_CACHE={self.worker_state_cache}: want 0 or more"
            )
        self.parsed_write_keys()
        self.parsed_lead_api_tokens()
        self.parsed_delivery_schedule()
        self._check_notifier()
        for name in ("webhook_tolerance_seconds", "header_timeout_seconds", "body_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise SettingsError(
                    f"{ENV_PREFIX}{name.upper()}={getattr(self, name)}: want more than 0 seconds"
                )
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise SettingsError(
                f"{ENV_PREFIX}LOG_LEVEL={self.log_level!r}: want debug, info, warning or error"
            )

    def parsed_write_keys(self) -> dict[str, tuple[str, str]]:
        """write key -> (source name, kind); kind decides which event types a source may send."""
        keys: dict[str, tuple[str, str]] = {}
        items = comma_list(self.write_keys)
        for number, item in enumerate(items, 1):
            key, sep, rest = item.partition("=")
            source, _, kind = rest.partition(":")
            if not sep or not key or not source or kind not in {"browser", "server"}:
                raise SettingsError(
                    f"{ENV_PREFIX}WRITE_KEYS: entry {number} of {len(items)} "
                    f"{_write_key_problem(sep, key, source, kind)}: want "
                    "key=source:browser|server (entries are not shown: they hold keys)"
                )
            keys[key] = (source, kind)
        return keys

    def parsed_lead_api_tokens(self) -> dict[str, str]:
        """token -> scope (read or admin) of the lead API's bearer tokens."""
        tokens: dict[str, str] = {}
        for item in comma_list(self.lead_api_tokens):
            token, sep, scope = item.rpartition(":")
            if not sep or not token or scope not in {"read", "admin"}:
                raise SettingsError(
                    f"{ENV_PREFIX}LEAD_API_TOKENS: an entry is not token:read|admin "
                    "(the token itself is not shown)"
                )
            tokens[token] = scope
        return tokens

    def parsed_delivery_schedule(self) -> tuple[float, ...]:
        """The delivery schedule's delays in seconds (LEADSTREAM_DELIVERY_SCHEDULE)."""
        return parse_delays(f"{ENV_PREFIX}DELIVERY_SCHEDULE", self.delivery_schedule)

    def _check_notifier(self) -> None:
        if self.notifier_handoffs not in ("sales", "all"):
            raise SettingsError(
                f"{ENV_PREFIX}NOTIFIER_HANDOFFS={self.notifier_handoffs!r}: want sales or all"
            )
        for name in (
            "delivery_attempts",
            "delivery_timeout_seconds",
            "delivery_schedule_poll_seconds",
            "notifier_claim_ttl_seconds",
            "notifier_delivered_ttl_seconds",
            "notifier_delivery_log_size",
            "notifier_commit_interval_seconds",
            "notifier_lag_interval_seconds",
            "fast_lane_concurrency",
            "routine_lane_concurrency",
            "max_pending",
        ):
            if not getattr(self, name) > 0:
                raise SettingsError(
                    f"{ENV_PREFIX}{name.upper()}={getattr(self, name)}: want more than 0"
                )
        for name in ("delivery_backoff_seconds", "max_backoff_seconds"):
            if getattr(self, name) < 0:
                raise SettingsError(
                    f"{ENV_PREFIX}{name.upper()}={getattr(self, name)}: want 0 or more"
                )

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.split(",")[0].rpartition(":")[2])

    @property
    def redis_port(self) -> int:
        rest = self.redis_url.split("://", 1)[1].split("/", 1)[0]
        return int(rest.rpartition(":")[2]) if ":" in rest else 6379

    @property
    def dev_path(self) -> Path:
        return Path(self.dev_dir).resolve()


def _write_key_problem(sep: str, key: str, source: str, kind: str) -> str:
    """What is wrong with a write-key entry, in words that quote no part of it that could be
    the key (an entry typed the wrong way round holds the key after the `=`)."""
    if not sep:
        return "has no '='"
    if not key:
        return "has no key before '='"
    if not source:
        return "has no source name after '='"
    if kind.isalpha() and len(kind) <= 10:
        return f"has kind {kind!r}"
    return "has no kind browser or server after the source"


def comma_list(text: str) -> tuple[str, ...]:
    """A comma-separated setting's items, stripped, empty ones left out."""
    return tuple(item for item in (p.strip() for p in text.split(",")) if item)


def parse_delays(name: str, raw: str) -> tuple[float, ...]:
    """`5s,5m,30m,2h` to seconds; empty is no delays. A bad item names the variable and the
    accepted form (a process must not start with a schedule it cannot keep)."""
    delays = []
    for item in (p.strip() for p in raw.split(",")):
        if not item and not raw.strip():
            continue
        try:
            seconds = parse_duration(item).total_seconds()
        except ValueError:
            seconds = -1.0
        if not 0 < seconds < float("inf"):
            raise SettingsError(
                f"{name}={raw!r}: {item!r} is not a delay; want comma-separated delays such "
                "as 5s,5m,30m,2h,5h,10h (a number above 0 with s, m, h, d or w, or ISO 8601 like "
                "PT5M), or empty"
            )
        delays.append(seconds)
    return tuple(delays)


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, help) of every setting, for documentation and `--help`."""
    rows = []
    for f in dataclasses.fields(Settings):
        rows.append((ENV_PREFIX + f.name.upper(), repr(f.default), f.metadata["help"]))
    return rows


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: want a {kind}") from None
    return raw


def check_environment(environ: Mapping[str, str]) -> list[str]:
    """Every problem of an environment's LEADSTREAM_* variables, for `leadstream settings --check`.

    A process stops at the first bad value; a deployment check wants them all, and also the
    misspelt names (`LEADSTREAM_KAFKA_BOOTSRAP`) that a process silently ignores.
    """
    fields = {ENV_PREFIX + f.name.upper(): f for f in dataclasses.fields(Settings)}
    problems = [
        f"{name} is no longer a setting ({REMOVED[name]}): remove it"
        if name in REMOVED
        else f"{name} is not a setting: fix the name or remove it"
        for name in sorted(environ)
        if name.startswith(ENV_PREFIX) and name not in fields
    ]
    for name, f in fields.items():
        if name in environ:
            try:
                _parse(name, environ[name], f.type)
            except SettingsError as exc:
                problems.append(str(exc))
    if not problems:  # cross-field checks need every value parsed
        try:
            Settings.from_env(environ)
        except SettingsError as exc:
            problems.append(str(exc))
    return problems
