"""App logging: one redacting handler on the root logger, text or one JSON object per line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from logsetup import configure_logging
from settings import get_settings


@pytest.fixture
def restore_root() -> Iterator[None]:
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_format_writes_one_parsable_object_per_line(restore_root) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("rag.chat").info("conversation %s started\nsecond line", "abc")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/?token=t0k3n", "1.1", 200
    )
    try:
        raise RuntimeError("boom for alice@example.fr")
    except RuntimeError:
        logging.getLogger("api").exception("failed for 06 12 34 56 78")
    logging.getLogger("quiet").debug("below the level")

    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(entries) == 3
    assert entries[0]["message"] == "conversation abc started\nsecond line"
    assert (entries[0]["level"], entries[0]["logger"]) == ("INFO", "rag.chat")
    assert entries[0]["time"].endswith("+00:00")
    assert entries[1]["message"] == '127.0.0.1:1 - "GET /?token=*** HTTP/1.1" 200'
    assert entries[2]["message"] == "failed for [téléphone]"
    assert "RuntimeError: boom for [email]" in entries[2]["exception"] and "alice" not in lines[2]


def test_text_format_is_the_default_and_redacts_too(restore_root) -> None:
    assert get_settings().log_format == "text"
    assert get_settings(log_format="json").log_format == "json"
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("social.service").info("post by @mallory@evil.example")
    assert stream.getvalue().rstrip().endswith("INFO social.service: post by [compte]")
    assert len(logging.getLogger().handlers) == 1


def test_command_lines_use_the_app_format_and_redact_their_log_file_too(restore_root, tmp_path, monkeypatch, capsys):
    from logsetup import configure_cli_logging

    monkeypatch.setenv("MOBILIA_LOG_FORMAT", "json")
    log_file = tmp_path / "train.log"
    configure_cli_logging("INFO", log_file=log_file)
    logging.getLogger("training.train").info("exemple de alice@example.fr, 06 12 34 56 78")
    for text in (capsys.readouterr().err, log_file.read_text(encoding="utf-8")):
        entry = json.loads(text.strip())
        assert entry["message"] == "exemple de [email], [téléphone]" and entry["logger"] == "training.train"


def test_uvicorn_loggers_configured_by_uvicorn_still_go_through_the_redaction(restore_root) -> None:
    """uvicorn's own dictConfig (any in-process server started with its defaults) gives its loggers a
    plain handler and no propagation: their lines, tokens included, would bypass the redaction."""
    import logging.config

    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/?token=s3cr3t", "1.1", 200)
    (entry,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entry["logger"] == "uvicorn.access" and "s3cr3t" not in entry["message"]
