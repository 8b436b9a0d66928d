"""How a Mastodon link's conversation is shown to the customer: the post quoted as text, never as markup."""

from __future__ import annotations

from types import SimpleNamespace

from social.links import welcome_text
from ui.chat_format import history_messages, link_welcome_markdown

POST = 'Plus de réseau !!! <img src=x onerror="alert(1)"> [cliquez](javascript:alert(2)) **fort** #FreeMobile'
CONTEXT = {"handle": "@alice", "complaint": POST, "urgency": "MEDIUM", "post_url": "https://m.example/@alice/1"}


def test_the_quoted_post_is_escaped_in_the_welcome_bubble() -> None:
    shown = link_welcome_markdown("Alice", welcome_text(CONTEXT, None))
    assert shown.startswith("Bonjour Alice !")
    assert "<img" not in shown and "&lt;img" in shown  # HTML stays text
    assert "](javascript" not in shown and r"\[cliquez\]\(javascript" in shown  # no link
    assert "**fort**" not in shown and r"\*\*fort\*\*" in shown  # no formatting
    assert "oui" in shown and "24 h" in shown


def test_a_resumed_conversation_is_rebuilt_with_feedback_ids_on_bot_answers_only() -> None:
    def message(id_, role, content, meta=None):
        return SimpleNamespace(id=id_, role=role, content=content, meta=meta)

    history, ids = history_messages([
        message(1, "user", POST),
        message(2, "system", welcome_text(CONTEXT, None), {"welcome": "mastodon"}),
        message(3, "assistant", "Voici la réponse.", {"mode_used": "extractive"}),
        message(4, "agent", "<b>Bonjour</b>", {"ticket_id": 1}),
        message(5, "system", "✅ Résolu", {"notice": "resolved"}),
    ])  # fmt: skip
    assert [m["role"] for m in history] == ["user", "assistant", "assistant", "assistant", "assistant"]
    assert ids == [None, None, 3, None, None]
    assert "<img" not in history[0]["content"] and "<img" not in history[1]["content"]
    assert history[3]["content"] == "**👤 Conseiller** : &lt;b&gt;Bonjour&lt;/b&gt;"
