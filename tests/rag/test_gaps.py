"""Knowledge gaps on seeded conversations: what counts as a gap, grouping, dates, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from rag.gaps import GapFinder
from storage import ConversationRepository, FeedbackRepository, Message, MessageRepository


def _turn(db, question: str, meta: dict, at: datetime, rating: int | None = None, comment: str | None = None) -> int:
    conversation = ConversationRepository(db).create()
    messages = MessageRepository(db)
    asked = messages.add(conversation.id, "user", question)
    answer = messages.add(conversation.id, "assistant", "…", meta=meta)
    with db.write() as session:
        session.execute(update(Message).where(Message.id.in_([asked.id, answer.id])).values(created_at=at))
    if rating is not None:
        FeedbackRepository(db).record(answer.id, conversation.id, rating, comment)
    return answer.id


@pytest.fixture
def seeded(db):
    day = datetime(2026, 11, 5, 10, tzinfo=UTC)
    good = {"confidence": 0.9, "out_of_scope": False, "escalation_reasons": [], "top_entry": "fac-001"}
    low = {"confidence": 0.3, "out_of_scope": False, "top_entry": "gen-001",
           "escalation_reasons": ["confiance de recherche insuffisante"]}  # fmt: skip
    _turn(db, "Comment télécharger ma facture ?", good, day)  # fine: not a gap
    _turn(db, "La 5G est dispo avec le forfait à 2 euros ?", {**good, "top_entry": "conv-009"}, day, -1, "Pas la bonne réponse")
    _turn(db, "la 5G est elle dispo avec le forfait 2 euros", {**good, "top_entry": "conv-009"}, day + timedelta(days=2), -1)
    _turn(db, "5G dispo forfait 2 euros ?", low, day + timedelta(days=3))
    _turn(db, "Quelle est la météo demain ?", {**good, "confidence": 0.2, "out_of_scope": True, "top_entry": None}, day)
    _turn(db, "Vieux problème de roaming", low, datetime(2026, 10, 1, tzinfo=UTC))
    _turn(db, "Merci beaucoup", {**good, "confidence": 1.0}, day, 1)
    return db


def test_gaps_are_grouped_with_counts_dates_and_entries(seeded) -> None:
    groups = GapFinder(seeded, min_confidence=0.42).groups(since=datetime(2026, 11, 1, tzinfo=UTC))
    assert [g.count for g in groups] == [3, 1]
    five_g = groups[0].to_dict()
    assert five_g["first"].startswith("2026-11-05") and five_g["last"].startswith("2026-11-08")
    assert five_g["entries"] == {"conv-009": 2, "gen-001": 1}
    assert five_g["reasons"] == {"thumbs_down": 2, "low_confidence": 1, "escalated": 1}
    assert five_g["comments"] == ["Pas la bonne réponse"]
    assert groups[1].to_dict()["reasons"] == {"out_of_scope": 1}
    everything = GapFinder(seeded, min_confidence=0.42).groups()
    assert "Vieux problème de roaming" in {g.question for g in everything}


def test_dismissed_questions_leave_the_report(seeded) -> None:
    finder = GapFinder(seeded, min_confidence=0.42)
    group = finder.groups()[0]
    finder.dismiss(group.to_dict()["message_ids"])
    assert group.question not in {g.question for g in finder.groups()}


def test_gaps_by_embedding_similarity(seeded, embedder) -> None:
    groups = GapFinder(seeded, min_confidence=0.42, embedder=embedder).groups(datetime(2026, 11, 1, tzinfo=UTC))
    assert sum(g.count for g in groups) == 4 and groups[0].count >= 2


def test_cli_json(seeded, monkeypatch, capsys) -> None:
    from rag.__main__ import main

    monkeypatch.setenv("DATABASE_URL", str(seeded.engine.url.render_as_string(hide_password=False)))
    assert main(["gaps", "--since", "2026-11-01", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [g["count"] for g in report] == [3, 1]
    assert main(["gaps"]) == 0
    assert "[3]" in capsys.readouterr().out
