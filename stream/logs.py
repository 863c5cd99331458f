"""Log lines as text for people or as JSON for log pipelines (`LEADSTREAM_LOG_FORMAT`), the same
in every process, Faust's and aiokafka's loggers included."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from stream.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = "fields"
"""`extra={FIELDS: {...}}` on a log call: keys the JSON format writes as keys of their own
(the collector's access log); the text format shows only the message."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, process; the
    traceback as `exc` when there is one; a record's FIELDS as keys of their own (never
    replacing those above)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(str(key), value)
        return orjson.dumps(line, default=str).decode()


def dict_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the settings' level and format (also what the bench
    hands to the P-faust baseline's Faust Worker, which would install its own handler)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if settings.log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"leadstream": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "leadstream",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["default"]},
    }


def configure(settings: Settings) -> None:
    import logging.config

    logging.config.dictConfig(dict_config(settings))
