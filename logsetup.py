"""Logging of the app and its command lines: one handler, text or JSON lines, personal data redacted.

``configure_logging`` is called once at start-up (``app.py``); every record, from our loggers,
uvicorn's or a library's, goes through the one handler on the root logger, hence through
``tickets.redact.RedactingFilter``. ``MOBILIA_LOG_FORMAT=json`` writes one JSON object per line
(time, level, logger, message, exception) for log collectors; ``text`` (default) stays readable.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped by json)."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record's time (UTC, ISO 8601), level, logger, message and exception."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    level: str | int = "INFO", fmt: LogFormat = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Replace the root logger's handlers by one redacting handler in ``fmt``; return it."""
    from tickets.redact import RedactingFilter

    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler
