"""KB loaders: FAQ JSON, Markdown, CSV and PDF files, duplicate ids and chunking."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from rag.sources import SourceError, load_csv, load_faq_json, load_kb, load_markdown, load_pdf, slugify, split_text


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def minimal_pdf(*lines: str, title: str | None = None) -> bytes:
    """A one-page PDF (Helvetica, one text line per string) with a correct xref table."""
    stream = b"".join(
        f"BT /F1 12 Tf 72 {712 - 20 * n} Td ({line}) Tj ET\n".encode("latin-1") for n, line in enumerate(lines)
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title:
        objects.append(f"<< /Title ({title}) >>".encode("latin-1"))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % len(objects) if title else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


# --- FAQ JSON ---------------------------------------------------------------------------------


def test_faq_json_ids_titles_and_variants(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "faq" / "billing.json",
        [
            {
                "id": "fac-1",
                "category": "facturation",
                "question": " Où est ma facture ? ",
                "variants": ["facture pdf", "  "],
                "answer": " Menu Mes factures. ",
                "tags": ["facture"],
                "links": ["https://mobile.free.fr/moncompte/"],
            },
            {"question": "Prix du forfait ?", "answer": "2 €.", "title": "Tarifs"},
        ],
    )
    first, second = load_faq_json(path, tmp_path)
    assert first.id == "fac-1"
    assert first.title == "Où est ma facture ?"
    assert first.questions == ["Où est ma facture ?", "facture pdf"]  # blank variants dropped
    assert first.answer == "Menu Mes factures."
    assert first.category == "facturation"
    assert first.tags == ["facture"] and first.links == ["https://mobile.free.fr/moncompte/"]
    assert first.source == "faq/billing.json" and first.kind == "faq"
    assert second.id == "billing-002"  # generated from the file name and position
    assert second.title == "Tarifs"
    assert second.category == "général"


def test_faq_json_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"question": "x", ', encoding="utf-8")
    with pytest.raises(SourceError, match=r"broken\.json: JSON invalide"):
        load_faq_json(path, tmp_path)


def test_faq_json_missing_answer_names_file_and_entry(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "faq.json", [{"question": "ok", "answer": "ok"}, {"question": "Sans réponse", "answer": "  "}]
    )
    with pytest.raises(SourceError, match=r"faq\.json: entry 1 lacks answer"):
        load_faq_json(path, tmp_path)


def test_faq_json_must_be_an_array(tmp_path: Path) -> None:
    path = write_json(tmp_path / "obj.json", {"question": "x", "answer": "y"})
    with pytest.raises(SourceError, match=r"obj\.json"):
        load_faq_json(path, tmp_path)


def test_faq_json_entry_that_is_not_an_object_names_the_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "strings.json", ["question sans réponse"])
    with pytest.raises(SourceError, match=r"strings\.json: entry 0"):
        load_faq_json(path, tmp_path)


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_split_by_headings_with_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "procedures" / "delais-de-reponse.md"
    path.parent.mkdir()
    path.write_text(
        "---\ncategory: réclamation\ntags: [délai]\n---\n# Délais de réponse\n\nIntroduction générale.\n\n"
        "## Réclamation écrite\nRéponse sous 10 jours.\n\n### Cas urgent\nSous 1 h.\n\n"
        "## Réclamation écrite\nDoublon de titre.\n\n## Vide\n\n",
        encoding="utf-8",
    )
    entries = load_markdown(path, tmp_path)
    assert [e.title for e in entries] == [
        "Délais de réponse",
        "Délais de réponse — Réclamation écrite",
        "Délais de réponse — Cas urgent",
        "Délais de réponse — Réclamation écrite",
    ]  # the empty "Vide" section is skipped
    assert [e.answer for e in entries] == [
        "Introduction générale.",
        "Réponse sous 10 jours.",
        "Sous 1 h.",
        "Doublon de titre.",
    ]
    assert all(e.category == "réclamation" and e.tags == ["délai"] for e in entries)
    assert all(e.kind == "procedure" and e.source == "procedures/delais-de-reponse.md" for e in entries)
    ids = [e.id for e in entries]
    assert len(set(ids)) == len(ids)
    assert ids[1] == "proc-delais-de-reponse#reclamation-ecrite"
    assert ids[3] == "proc-delais-de-reponse#reclamation-ecrite-bis"
    assert entries[2].questions == ["Cas urgent"]


def test_markdown_without_front_matter_or_h1(tmp_path: Path) -> None:
    path = tmp_path / "aide-rapide.md"
    path.write_text("Texte avant tout titre.\n\n## Étape\nFaites ceci.\n", encoding="utf-8")
    intro, step = load_markdown(path, tmp_path)
    assert intro.title == "Aide rapide" and intro.category == "assistance"
    assert step.title == "Aide rapide — Étape"


def test_slugify() -> None:
    assert slugify("Délais de prise en charge !") == "delais-de-prise-en-charge"
    assert slugify("???") == "section"


# --- CSV --------------------------------------------------------------------------------------


def test_csv_rows_become_conversation_entries(tmp_path: Path) -> None:
    path = tmp_path / "Past Conversations.csv"
    path.write_text(
        'id,category,question,answer\nc1,facturation,"Ma facture, où ?",Dans Mes factures.\n'
        ",,Sans id ?,Réponse.\nc3,forfait,,Pas de question\n",
        encoding="utf-8",
    )
    entries = load_csv(path, tmp_path)
    assert [e.id for e in entries] == ["conv-past-conversations-c1", "conv-past-conversations-2"]
    assert entries[0].title == "Ma facture, où ?" and entries[0].category == "facturation"
    assert entries[1].category == "général"
    assert all(e.kind == "conversation" for e in entries)


def test_csv_requires_question_and_answer_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,question,reponse\n1,a,b\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"bad\.csv: columns 'question' and 'answer' are required"):
        load_csv(path, tmp_path)


# --- PDF --------------------------------------------------------------------------------------


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "guide-tarifs.pdf"
    path.parent.mkdir()
    path.write_bytes(minimal_pdf("Bonjour facture", "Le forfait coute 2 euros."))
    (entry,) = load_pdf(path, tmp_path)
    assert "Bonjour facture" in entry.answer
    assert "2 euros" in entry.answer
    assert entry.id == "pdf-guide-tarifs-p1"
    assert entry.title == "guide-tarifs (page 1)"
    assert entry.kind == "pdf" and entry.source == "docs/guide-tarifs.pdf"


def test_pdf_title_comes_from_metadata(tmp_path: Path) -> None:
    path = tmp_path / "g.pdf"
    path.write_bytes(minimal_pdf("Bonjour facture", title="Guide tarifaire"))
    (entry,) = load_pdf(path, tmp_path)
    assert entry.title == "Guide tarifaire (page 1)"


def test_unreadable_pdf_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pdf"
    path.write_bytes(b"not a pdf at all")
    with pytest.raises(SourceError, match=r"corrupt\.pdf: PDF illisible"):
        load_pdf(path, tmp_path)


# --- whole KB ---------------------------------------------------------------------------------


def test_load_kb_reads_every_format_in_sorted_order(tmp_path: Path) -> None:
    from tests.conftest import write_mini_kb

    kb = write_mini_kb(tmp_path / "kb")
    (kb / "z.pdf").write_bytes(minimal_pdf("Bonjour facture"))
    (kb / ".hidden.json").write_text("not json", encoding="utf-8")  # hidden files are ignored
    (kb / "notes.txt").write_text("ignored", encoding="utf-8")
    entries = load_kb(kb)
    assert [e.kind for e in entries] == ["conversation", "faq", "faq", "procedure", "procedure", "pdf"]
    assert {"m-1", "m-2", "conv-conv-1", "pdf-z-p1"} <= {e.id for e in entries}


def test_load_kb_rejects_duplicate_ids(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", [{"id": "dup-1", "question": "q", "answer": "a"}])
    write_json(tmp_path / "b.json", [{"id": "dup-1", "question": "q2", "answer": "a2"}])
    with pytest.raises(SourceError, match="Duplicate KB ids: dup-1"):
        load_kb(tmp_path)


def test_load_kb_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        load_kb(tmp_path / "nope")


# --- chunking ---------------------------------------------------------------------------------


def test_split_text_short_text_is_one_chunk() -> None:
    assert split_text("Court.", 200, 50) == ["Court."]


def test_split_text_respects_size_and_overlap() -> None:
    sentences = [f"Phrase numéro {n} avec quelques mots de remplissage." for n in range(40)]
    text = " ".join(sentences)
    chunks = split_text(text, 200, 60)
    assert len(chunks) > 1
    assert all(len(c) <= 200 for c in chunks)
    for prev, nxt in itertools.pairwise(chunks):
        # the next chunk starts with the last sentence(s) of the previous one
        assert prev.endswith(nxt.split(". ")[0] + ".")
    # nothing is lost: every sentence appears in some chunk
    assert all(any(s in c for c in chunks) for s in sentences)


def test_split_text_never_exceeds_size_when_overlap_meets_a_long_sentence() -> None:
    text = "Court. " * 10 + "x" * 190 + ". Fin."
    chunks = split_text(text, 200, 60)
    assert all(len(c) <= 200 for c in chunks)
    assert any("x" * 190 in c for c in chunks)


def test_split_text_hard_splits_a_very_long_sentence_with_overlap() -> None:
    text = "a" * 250 + "b" * 250
    chunks = split_text(text, 200, 50)
    assert all(len(c) <= 200 for c in chunks)
    assert chunks[0][-50:] == chunks[1][:50]
    assert "".join(c[50:] if i else c for i, c in enumerate(chunks)) == text


def test_customer_labels_and_urls_never_show_internal_ids() -> None:
    from rag.sources import DEFAULT_LINKS, Entry, customer_label, customer_url

    faq = Entry(id="fac-001", title="Comment télécharger ma facture ?", answer="x", category="facturation")
    conv = Entry(id="conv-past-conversations-conv-014", title="je veux parler à quelqu'un !!", answer="x",
                 category="réclamation", kind="conversation")
    linked = Entry(id="proc-x#y", title="Escalade — Quand", answer="x", kind="procedure",
                   links=["https://mobile.free.fr/assistance/contact.html"])
    assert customer_label(faq) == "Comment télécharger ma facture ?"
    assert customer_label(conv) == "Échange avec le service client (réclamation)"
    assert customer_label(linked) == "Escalade — Quand"
    assert customer_url(faq) == DEFAULT_LINKS["espace_abonne"]
    assert customer_url(conv) == DEFAULT_LINKS["faq"]
    assert customer_url(linked) == "https://mobile.free.fr/assistance/contact.html"
