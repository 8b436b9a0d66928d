"""Dataset builder: chat format, split by source entry, dedup, stats, review candidates, and no PII left."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rag.contact import validate_contact
from storage import MessageRepository
from tests.conftest import write_mini_kb
from tickets.redact import redact
from training.config import DataBuildConfig, load_config
from training.data import Group, build, main, normalize, split_groups

PHONES = [
    "06 12 34 56 78", "06.12.34.56.78", "06-12-34-56-78", "0612345678", "+33 6 12 34 56 78", "+33612345678",
    "0033612345678", "0033 6 12 34 56 78", "+33 (0)6 12 34 56 78", "+33.6.12.34.56.78", "07 98 76 54 32",
    "01 44 55 66 77", "0612 345 678", "06 1234 5678",
]  # fmt: skip
EMAILS = ["jean.dupont@example.fr", "J.Dupont+free@mail.example.com", "marie_curie99@orange.fr"]
IBANS = ["FR76 3000 6000 0112 3456 7890 189", "FR7630006000011234567890189", "fr76 3000 6000 0112 3456 7890 189"]
NAME = "Jean-Baptiste Dupontel"
PII = re.compile(r"(?:\+|00)33|(?<!\d)0[1-9](?:[\s.-]?\d){8}|@|FR76|30006000|dupontel|jean-baptiste", re.IGNORECASE)


@pytest.mark.parametrize("phone", PHONES)
def test_every_phone_format_is_redacted(phone):
    out = redact(f"Rappelez-moi au {phone} svp")
    assert out == "Rappelez-moi au [téléphone] svp"


@pytest.mark.parametrize("email", EMAILS)
def test_emails_are_redacted(email):
    assert redact(f"mon mail : {email}.") == "mon mail : [email]."


@pytest.mark.parametrize("iban", IBANS)
def test_ibans_are_redacted(iban):
    assert redact(f"IBAN {iban} merci") == "IBAN [iban] merci"


def test_known_and_introduced_names_are_redacted():
    text = "Je m'appelle Marie Curie. Bonjour M. DUPONTEL, c'est Jean-Baptiste qui écrit."
    out = redact(text, names=[NAME])
    assert "Marie" not in out and "Curie" not in out and not PII.search(out)
    assert redact("facture de mars", names=[NAME]) == "facture de mars"  # nothing else touched


def _config(tmp_path: Path, db_url: str, **processing) -> DataBuildConfig:
    kb = write_mini_kb(tmp_path / "kb")
    text = f"sources: {{kb_dir: {kb}, db_url: '{db_url}'}}\noutput: {{out_dir: {tmp_path / 'out'}}}\n"
    overrides = [f"processing.{k}={v}" for k, v in processing.items()]
    return load_config(DataBuildConfig, text=text, overrides=[*overrides, "split.validation_ratio=0.5"])


def _pii_conversations(db) -> None:
    """Two escalated conversations full of PII: one resolved by an agent, one still open; plus a thumbs-down."""
    from storage import Conversation, Customer, Feedback, Message
    from tickets import TicketService

    service = TicketService(db)
    with db.session() as s:
        customer = Customer(full_name=NAME, phone="+33612345678", email="jb@example.fr")
        s.add(customer)
        s.flush()
        for cid in ("c1", "c2"):
            s.add(Conversation(id=cid, customer_id=customer.id, status="escalated"))
        s.flush()
        question = (f"Bonjour, je suis {NAME}, mon numéro est {PHONES[4]} ou {PHONES[6]}, mail {EMAILS[0]}, "
                    f"IBAN {IBANS[0]}. Le prélèvement a échoué.")  # fmt: skip
        s.add(Message(conversation_id="c1", role="user", content=question))
        s.add(Message(conversation_id="c2", role="user", content=f"Rappelez-moi au {PHONES[1]}, signé Dupontel"))
        bot = Message(conversation_id="c2", role="assistant", content=f"Bonjour Jean-Baptiste, votre IBAN {IBANS[1]} ?")
        s.add(bot)
        s.flush()
        s.add(Feedback(message_id=bot.id, conversation_id="c2", rating=-1, comment=f"nul, appelez {PHONES[0]}"))
        customer_id = customer.id
    t1 = service.open_ticket(conversation_id="c1", customer_id=customer_id, category="facturation",
                             priority="HIGH", summary=f"Prélèvement rejeté pour {NAME} ({EMAILS[1]})")  # fmt: skip
    service.reply_to_customer(t1.id, "agent1", "Bonjour Jean-Baptiste, nous avons relancé le prélèvement "
                              "sur votre IBAN, il passera sous 3 jours ouvrés.")  # fmt: skip
    service.set_status(t1.id, "RESOLVED", "agent1")
    service.open_ticket(conversation_id="c2", customer_id=customer_id, category="technique", priority="LOW",
                        summary=f"rappel au {PHONES[2]}")  # fmt: skip


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def built(tmp_path, db):
    _pii_conversations(db)
    config = _config(tmp_path, db.url)
    return build(config), config


def test_examples_are_chat_format_and_loadable_with_datasets(built):
    from datasets import load_dataset

    report, _ = built
    files = {s: str(report.out_dir / f"{s}.jsonl") for s in ("train", "validation")}
    ds = load_dataset("json", data_files=files, cache_dir=str(report.out_dir / "hf-cache"))
    assert len(ds["train"]) == report.stats["examples"]["train"] > 0
    assert len(ds["validation"]) == report.stats["examples"]["validation"] > 0
    roles = [m["role"] for m in ds["train"][0]["messages"]]
    assert roles == ["system", "user", "assistant"]


def test_split_is_by_source_entry_without_leakage(built):
    report, _ = built
    train, val = _read(report.out_dir / "train.jsonl"), _read(report.out_dir / "validation.jsonl")
    assert {e["source"] for e in train}.isdisjoint({e["source"] for e in val})
    train_q = {normalize(e["messages"][1]["content"]) for e in train}
    assert train_q.isdisjoint({normalize(e["messages"][1]["content"]) for e in val})
    # FAQ variants of one entry stay together
    faq_sources = {e["source"]: e for e in train + val if e["kind"] == "faq"}
    assert {"m-1", "m-2"} <= set(faq_sources)


def test_split_is_deterministic_and_stratified():
    groups = [Group(f"{c}-{i}", c, "faq") for c in ("a", "b") for i in range(10)]
    first = split_groups(groups, 0.2, seed=7)
    assert first == split_groups(list(reversed(groups)), 0.2, seed=7)
    assert split_groups(groups, 0.2, seed=8) != first
    train, val = first
    assert len(val) == 4 and sum(g.startswith("a") for g in val) == 2 and not train & val


def test_dedup_on_normalized_text(tmp_path, db):
    config = _config(tmp_path, db.url)
    faq = Path(config.sources.kb_dir) / "faq" / "mini.json"
    items = json.loads(faq.read_text(encoding="utf-8"))
    items[0]["variants"] += ["FACTURE PDF !", "Où trouver ma facture ?"]  # same text once normalized
    faq.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    report = build(config)
    rows = _read(report.out_dir / "train.jsonl") + _read(report.out_dir / "validation.jsonl")
    keys = [normalize(r["messages"][1]["content"]) + normalize(r["messages"][2]["content"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert report.stats["duplicates_removed"] >= 2


def test_variations_and_sources(built):
    report, config = built
    rows = _read(report.out_dir / "train.jsonl") + _read(report.out_dir / "validation.jsonl")
    kinds = {r["kind"] for r in rows}
    assert kinds == {"faq", "procedure", "conversation", "ticket"}
    per_question = [r for r in rows if r["source"] == "m-1"]
    assert len(per_question) == 2 * (1 + config.processing.variations)  # question + 1 variant, each varied
    ticket = next(r for r in rows if r["kind"] == "ticket")
    assert "relancé le prélèvement" in ticket["messages"][2]["content"]


def test_stats_per_category(built):
    report, _ = built
    stats = json.loads((report.out_dir / "stats.json").read_text(encoding="utf-8"))
    total = sum(sum(v.values()) for v in stats["per_category"].values())
    assert total == stats["examples"]["train"] + stats["examples"]["validation"]
    assert "facturation" in stats["per_category"]["train"] | stats["per_category"]["validation"]


def test_negative_feedback_and_escalations_go_to_review_only(built):
    report, _ = built
    candidates = _read(report.out_dir / "review_candidates.jsonl")
    reasons = sorted(c["reason"] for c in candidates)
    assert reasons == ["escalation", "escalation", "negative_feedback"]
    rows = _read(report.out_dir / "train.jsonl") + _read(report.out_dir / "validation.jsonl")
    assert {r["source"] for r in rows if r["kind"] == "ticket"} == {"ticket-1"}  # open ticket c2: not trained on
    assert not any("votre IBAN [iban] ?" in r["messages"][2]["content"] for r in rows)  # the thumbs-down answer


def test_no_pii_survives_anywhere(built, caplog):
    report, _ = built
    for name in ("train.jsonl", "validation.jsonl", "review_candidates.jsonl", "stats.json"):
        text = (report.out_dir / name).read_text(encoding="utf-8")
        assert not PII.search(text), f"PII left in {name}: {PII.search(text).group(0)}"
    assert "[téléphone]" in (report.out_dir / "review_candidates.jsonl").read_text(encoding="utf-8")
    assert not PII.search(caplog.text)


def test_contact_form_names_are_redacted_too(db):
    """The name a conversation was opened with (not the customer record's) is masked in the dataset texts."""
    from rag.chat import ChatService
    from tickets import TicketService
    from training.data import db_groups_and_candidates

    tickets = TicketService(db)
    chat = ChatService(db, engine=None, tickets=tickets)
    chat.start(validate_contact("Alice Martin", "06 12 34 56 78"))
    session = chat.start(validate_contact("Mallory Intrus", "06 12 34 56 78"))
    MessageRepository(db).add(session.conversation_id, "user", "Bonjour, ici Mallory, ma facture est fausse")
    tickets.open_ticket(conversation_id=session.conversation_id, customer_id=None, category="facturation",
                        priority="LOW", summary="Mallory Intrus conteste sa facture")  # fmt: skip

    _, candidates = db_groups_and_candidates(str(db.url), redact)
    text = json.dumps(candidates, ensure_ascii=False)
    assert "[nom]" in text and "Mallory" not in text and "Intrus" not in text


def test_cli_build(tmp_path, db, capsys):
    config = _config(tmp_path, "sqlite://")
    path = tmp_path / "data.yaml"
    from training.config import to_yaml

    path.write_text(to_yaml(config), encoding="utf-8")
    assert main(["build", "--config", str(path), "--db", db.url, "--set", "processing.variations=0"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["examples"]["train"] > 0
    assert main(["build", "--config", str(path), "--split.validation_ratio", "2"]) == 2
    assert "validation_ratio" in capsys.readouterr().err
