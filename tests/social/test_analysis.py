"""Unit tests of social.analysis: HTML to text, complaint score, urgency and French reasons."""

from __future__ import annotations

from social.analysis import analyze_post, complaint_score, html_to_text, urgency_of

TAGS = ["Free", "FreeMobile", "SAVFree"]
KEYWORDS = ["free mobile"]


def analyze(html: str, tags=("FreeMobile",), mentions=()):
    return analyze_post(
        html, tags=list(tags), mentions=list(mentions), hashtags=TAGS, keywords=KEYWORDS, own_acct="mobiliasav"
    )


def test_html_to_text_handles_mastodon_markup_entities_and_scripts() -> None:
    html = (
        '<p>Bonjour <span class="h-card"><a href="https://x/@mobiliasav" class="u-url mention">@<span>'
        'mobiliasav</span></a></span> &amp; <a href="https://x/tags/FreeMobile" class="mention hashtag">#<span>'
        'FreeMobile</span></a></p><p>ligne&nbsp;2<br>ligne 3 &lt;b&gt;</p><script>alert("x")</script>'
    )
    assert html_to_text(html) == "Bonjour @mobiliasav & #FreeMobile\nligne 2\nligne 3 <b>"
    assert html_to_text("") == "" and html_to_text(None) == ""
    assert html_to_text("<p>a < b et c > d</p>") == "a < b et c > d"


def test_complaint_signals_each_raise_the_score_and_are_explained() -> None:
    calm, _ = complaint_score("Quelle est la couverture 5G à Lyon ?")
    angry, reasons = complaint_score("PLUS DE RÉSEAU DEPUIS HIER C'EST INADMISSIBLE !!! 😡😡")
    assert calm == 0.0
    assert angry >= 0.8
    joined = " | ".join(reasons)
    for expected in (
        "Mots de plainte",
        "Émojis négatifs (2)",
        "Ponctuation insistante (!!!)",
        "majuscules",
        "Sentiment négatif",
    ):
        assert expected in joined


def test_urgency_levels() -> None:
    assert urgency_of("plus aucun service depuis ce matin", 0.4)[0] == "HIGH"
    assert urgency_of("toujours pas de réseau depuis 3 jours", 0.4)[0] == "HIGH"
    assert urgency_of("facturé deux fois ce mois-ci, remboursement ?", 0.4)[0] == "MEDIUM"
    level, why = urgency_of("un peu déçu du débit", 0.36)
    assert level == "LOW" and why.startswith("Urgence basse")


def test_analyze_post_complaint_with_reasons_in_french() -> None:
    result = analyze("<p>Panne réseau depuis 2 jours, c'est une honte !! #FreeMobile</p>")
    assert result.relevant and result.is_complaint
    assert result.urgency == "HIGH"
    assert "Hashtag suivi : #FreeMobile" in result.reasons
    assert any(r.startswith("Réclamation détectée") for r in result.reasons)
    assert " ; " in result.reason


def test_analyze_post_non_complaint_and_irrelevant() -> None:
    happy = analyze("<p>Merci pour la 5G, ça marche super bien #FreeMobile</p>")
    assert happy.relevant and not happy.is_complaint and happy.urgency is None
    assert any(r.startswith("Pas une réclamation") for r in happy.reasons)
    off_topic = analyze("<p>Quel temps à Paris !!</p>", tags=())
    assert not off_topic.relevant and not off_topic.is_complaint


def test_mention_and_keyword_make_a_post_relevant() -> None:
    mention = analyze("<p>@mobiliasav ma ligne est coupée</p>", tags=(), mentions=("mobiliasav",))
    assert mention.relevant and "Mention du compte @mobiliasav" in mention.reasons
    keyword = analyze("<p>Free Mobile ne marche pas chez moi</p>", tags=())
    assert keyword.relevant and keyword.is_complaint
