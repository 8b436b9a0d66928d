"""What the customer sees of an answer: readable sources with links, folded; no ids, no scores."""

from __future__ import annotations

from rag.answer import Answer, Source
from ui.chat_format import answer_markdown

LINKS = [{"label": "FAQ Free Mobile", "url": "https://mobile.free.fr/assistance/"}]


def _answer(**kw) -> Answer:
    sources = [
        Source("fac-001", "Comment télécharger ma facture ?", 0.8123, "Comment télécharger ma facture ?",
               "https://mobile.free.fr/moncompte/", True),
        Source("conv-past-conversations-conv-014", "Je veux parler à quelqu'un !", 0.51,
               "Échange avec le service client (réclamation)", "https://mobile.free.fr/assistance/", False),
    ]
    return Answer(**{"text": "Vos factures sont dans « Mes factures ».", "sources": sources, "links": LINKS, **kw})


def test_sources_are_titles_with_links_folded_under_the_answer() -> None:
    shown = answer_markdown(_answer())
    text, folded = shown.split("\n\n", 1)
    assert text == "Vos factures sont dans « Mes factures »."
    assert folded.startswith('<details class="mc-sources"><summary>Sources (1) et liens utiles</summary>')
    assert '<a href="https://mobile.free.fr/moncompte/" target="_blank" rel="noopener noreferrer">' \
           "Comment télécharger ma facture ?</a>" in folded
    assert "fac-001" not in shown and "conv-" not in shown and "0.81" not in shown  # staff-only details
    assert "Je veux parler" not in shown  # runners-up the answer did not use are not listed


def test_generated_text_is_escaped_and_its_citations_become_the_source_list() -> None:
    answer = _answer(text="Voir <b>Mes factures</b> [fac-001] [xyz-9].", mode_used="generative")
    for source in answer.sources:
        source.used = False
    shown = answer_markdown(answer)
    assert shown.startswith("Voir &lt;b&gt;Mes factures&lt;/b&gt; [xyz-9].")
    assert "Sources (1)" in shown and "[fac-001]" not in shown


def test_labels_and_urls_from_the_kb_cannot_inject_markup() -> None:
    answer = _answer()
    answer.sources[0].label = "<img src=x onerror=alert(1)>"
    answer.sources[0].url = "javascript:alert(1)"
    shown = answer_markdown(answer)
    assert "<img" not in shown and "javascript:" not in shown
    assert 'href="https://mobile.free.fr/assistance/"' in shown


def test_small_talk_has_no_source_block() -> None:
    assert answer_markdown(Answer(text="Bonjour !")) == "Bonjour !"
    assert "<summary>Liens utiles</summary>" in answer_markdown(Answer(text="Bonjour !", links=LINKS))
