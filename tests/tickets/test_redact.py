"""The one redaction (exports, logs, datasets): handles, international numbers, ids kept, and the log filter."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tickets.redact import RedactingFilter, redact

CONVERSATION_ID = "de12" + "a" * 28  # a 32-hex id that starts like an IBAN ("DE12…")


def test_mastodon_handles_and_international_numbers_are_redacted() -> None:
    assert redact("merci @jean.dupont@mastodon.social !") == "merci [compte] !"
    assert redact("(@alice@m.example)") == "([compte])"
    assert redact("call +4915112345678 now") == "call [téléphone] now"
    assert redact("écrivez à jean@example.fr") == "écrivez à [email]"  # e-mails are still e-mails


def test_ids_and_figures_are_not_personal_data() -> None:
    text = f"conversation {CONVERSATION_ID} : 3 messages, 19,99 €, ticket 42"
    assert redact(text) == text
    assert redact("DE89 3704 0044 0532 0130 00") == "[iban]"  # a real German IBAN still is one


def test_names_pattern_is_cached_and_order_free() -> None:
    assert redact("Alice a appelé, Martin aussi", names=["Alice Martin"]) == "[nom] a appelé, [nom] aussi"
    assert redact("Alice", names=("Alice Martin", None, "")) == "[nom]"


@pytest.fixture
def records() -> Iterator[tuple[logging.Logger, list[str]]]:
    """A logger whose handler redacts, as logsetup installs it, and keeps what it would write."""
    logger = logging.getLogger("tests.redact")
    handler = _Keep()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, handler.lines
    logger.removeHandler(handler)
    logger.propagate = True


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_every_log_line_comes_out_redacted(records) -> None:
    logger, lines = records
    logger.info(
        "contact %s, %s, %s, %s",
        "06 12 34 56 78",
        "jean.dupont@example.fr",
        "@jean@mastodon.social",
        "FR76 3000 6000 0112 3456 7890 189",
    )
    logger.info("Bonjour, je m'appelle Jeanne Moreau")
    logger.info("rappeler %s", "Jeanne Moreau", extra={"names": ["Jeanne Moreau"]})
    logger.info('127.0.0.1:5000 - "GET /?token=s3cr3t-Token_value&x=1 HTTP/1.1" 200')
    logger.info("conversation %s started", CONVERSATION_ID)
    try:
        raise ValueError("duplicate key (phone)=(+33612345678) for jean.dupont@example.fr")
    except ValueError:
        logger.exception("insert failed for %s", "0612345678")

    text = "\n".join(lines)
    for secret in ("12 34 56", "jean.dupont", "@jean@", "FR76", "Jeanne", "Moreau", "s3cr3t", "33612345678"):
        assert secret not in text, secret
    assert lines[0] == "INFO tests.redact: contact [téléphone], [email], [compte], [iban]"
    assert lines[2] == "INFO tests.redact: rappeler [nom]"
    assert "token=***&x=1" in lines[3]
    assert lines[4].endswith(f"conversation {CONVERSATION_ID} started")  # ids stay usable
    assert "ValueError: duplicate key (phone)=([téléphone]) for [email]" in lines[5]


def test_a_malformed_log_call_neither_raises_nor_leaks(records) -> None:
    logger, lines = records
    logger.info("rappeler %s au %s", "06 12 34 56 78")  # one argument missing
    assert len(lines) == 1 and "unformattable log message" in lines[0] and "12 34" not in lines[0]
