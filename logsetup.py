"""Logging of the app and its command lines: one handler, text or JSON lines, personal data redacted.

``configure_logging`` is called once at start-up (``app.py``; ``configure_cli_logging`` in the
command lines); every record, from our loggers, uvicorn's or a library's, goes through the one
handler on the root logger (and the run's log file, if any), hence through
``tickets.redact.RedactingFilter``. ``MOBILIA_LOG_FORMAT=json`` writes one JSON object per line
(time, level, logger, message, exception) for log collectors; ``text`` (default) stays readable.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HANDLER_NAME = "mobilia"  # the name of the handlers configure_logging installs
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
    level: str | int = "INFO", fmt: LogFormat = "text", stream: TextIO | None = None, log_file: Path | None = None
) -> logging.Handler:
    """Replace the root logger's handlers by one redacting handler in ``fmt`` (and one to ``log_file``); return the first."""
    from tickets.redact import RedactingFilter

    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        handler.set_name(HANDLER_NAME)
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # Loggers that a library configured itself (uvicorn's dictConfig gives its own handler and no
    # propagation) would bypass the redacting handler: route them through the root one.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.disabled = False
    return handlers[0]


def configure_cli_logging(level: str | int = "INFO", log_file: Path | None = None) -> logging.Handler:
    """``configure_logging`` for a command line, in the app's format (MOBILIA_LOG_FORMAT, .env included)."""
    from settings import get_settings

    return configure_logging(level, get_settings().log_format, log_file=log_file)
