"""The monitor against a real mastodon-mock server: streaming, catch-up, server restart, reply modes."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlparse

import pytest

from bench.mastodon_peer import SUPPORT
from social.service import ReplyError
from storage import ConversationRepository
from tests.social.conftest import our_replies, wait_for

pytestmark = pytest.mark.slow

COMPLAINT = "Plus aucun réseau depuis ce matin, c'est inadmissible !!! 😡 #FreeMobile"


def stored(monitor, status, state: str = "sent"):
    """Wait until the post is stored with the given reply state and return it."""

    def check():
        post = monitor.service.posts.by_status_id(str(status["id"]))
        return post if post is not None and post.reply_status == state else None

    return wait_for(check)


def token_of(text: str) -> str:
    url = next(word for word in text.split() if word.startswith("http://chat.test/"))
    return parse_qs(urlparse(url).query)["token"][0]


def test_live_complaint_is_answered_once_with_a_working_link(make_monitor, peer, db) -> None:
    monitor = make_monitor("auto")
    monitor.start()
    wait_for(lambda: monitor.status().connected)
    status = peer.client("alice").status_post(COMPLAINT)
    post = stored(monitor, status)

    replies = wait_for(lambda: our_replies(peer, status["id"]))
    assert len(replies) == 1
    assert str(replies[0]["in_reply_to_id"]) == str(status["id"])
    assert str(replies[0]["id"]) == post.reply_status_id
    context = monitor.service.tokens.resolve(token_of(post.reply_text))
    assert context["handle"] == "@alice" and context["post_url"] == status["url"]
    assert "inadmissible" in context["complaint"]
    assert post.urgency == "HIGH" and post.ticket_id is not None  # HIGH opens a ticket
    ticket = monitor.service.tickets.get(post.ticket_id)
    conversation = ConversationRepository(db).get(ticket.conversation_id)
    assert conversation.channel == "mastodon" and conversation.context["post_url"] == status["url"]
    # Our own reply carries #SAVFree and is streamed back: it must not be answered or stored.
    assert monitor.service.posts.by_status_id(post.reply_status_id) is None
    monitor.stop()
    assert len(our_replies(peer, status["id"])) == 1


def test_posts_made_while_stopped_are_caught_up_without_duplicates(make_monitor, peer) -> None:
    first = make_monitor("auto")
    first.start()
    wait_for(lambda: first.status().connected)
    alice = peer.client("alice")
    before = alice.status_post(COMPLAINT)
    stored(first, before)
    first.stop()

    offline = [
        alice.status_post(f"Facturé deux fois ce mois-ci, remboursez-moi !! n°{i} #FreeMobile") for i in range(3)
    ]
    second = make_monitor("auto")
    second.start()
    for status in offline:
        stored(second, status)
    for status in [before, *offline]:
        assert len(our_replies(peer, status["id"])) == 1
    assert second.service.posts.counts()["sent"] == 4


def test_server_restart_while_streaming_misses_nothing(make_monitor, peer) -> None:
    monitor = make_monitor("auto")
    monitor.start()
    wait_for(lambda: monitor.status().connected)
    alice = peer.client("alice")
    first = alice.status_post(COMPLAINT)
    stored(monitor, first)

    peer.stop()
    wait_for(lambda: not monitor.status().connected)
    peer.start()
    # Posted at once after the restart, before the monitor has reconnected: only catch-up sees it.
    after = [alice.status_post(f"Toujours pas de réseau, c'est nul !! essai {i} #FreeMobile") for i in range(3)]
    for status in after:
        stored(monitor, status)
    wait_for(lambda: monitor.status().connected)
    late = alice.status_post("Ligne coupée sans raison, inacceptable !! #FreeMobile")
    stored(monitor, late)
    for status in [first, *after, late]:
        assert len(our_replies(peer, status["id"])) == 1
    assert monitor.status().reconnects >= 1


def test_mentions_are_handled(make_monitor, peer) -> None:
    monitor = make_monitor("auto")
    monitor.start()
    wait_for(lambda: monitor.status().connected)
    status = peer.client("bob").status_post(f"@{SUPPORT} ma ligne est coupée depuis hier, ça ne marche pas !!")
    post = stored(monitor, status)
    assert "Mention du compte" in post.reason and "mention" in post.reason
    assert len(our_replies(peer, status["id"])) == 1
    assert monitor.last_seen()["mentions"]


def test_non_complaints_are_stored_without_reply(make_monitor, peer) -> None:
    monitor = make_monitor("auto")
    monitor.start()
    wait_for(lambda: monitor.status().connected)
    status = peer.client("alice").status_post("Merci pour la 5G, ça marche très bien #FreeMobile")
    post = stored(monitor, status, state="none")
    assert not post.is_complaint and post.reply_text is None
    assert our_replies(peer, status["id"]) == []


def test_review_mode_queues_and_an_agent_send_goes_out_once(make_monitor, peer) -> None:
    monitor = make_monitor("review")
    monitor.start()
    wait_for(lambda: monitor.status().connected)
    status = peer.client("alice").status_post("Prélevé deux fois, c'est une arnaque !! #SAVFree")
    post = stored(monitor, status, state="pending")
    assert "{lien}" in post.reply_text and our_replies(peer, status["id"]) == []

    edited = "@alice Désolés ! Écrivez-nous ici : {lien} #SAVFree #Support"
    results, errors = [], []

    def agent():
        try:
            results.append(monitor.service.send_now(post.id, edited))
        except ReplyError as exc:
            errors.append(exc)

    agents = [threading.Thread(target=agent) for _ in range(4)]  # four agents click "send" together
    for thread in agents:
        thread.start()
    for thread in agents:
        thread.join(120)  # a bound against hangs only
    assert not any(thread.is_alive() for thread in agents) and len(results) + len(errors) == 4
    # Under load the peer can time out: the reply then stays queued and the monitor sends it again
    # (same idempotency key). Wait for that event, then check it went out once.
    wait_for(lambda: monitor.service.posts.get(post.id).reply_status == "sent", timeout=120)
    replies = our_replies(peer, status["id"])
    assert len(replies) == 1 and "Écrivez-nous ici" in replies[0]["content"]
    with pytest.raises(ReplyError):
        monitor.service.send_now(post.id, edited)


def test_off_mode_stores_only(make_monitor, peer) -> None:
    monitor = make_monitor("off")
    monitor.start()
    wait_for(lambda: monitor.status().connected)
    status = peer.client("alice").status_post(COMPLAINT)
    post = stored(monitor, status, state="none")
    assert post.is_complaint and post.reply_text is None


def test_cli_once_catches_up_and_exits(peer, db, monkeypatch, capsys) -> None:
    from social.monitor import main

    status = peer.client("alice").status_post(COMPLAINT)
    monkeypatch.setenv("MOBILIA_MASTODON__INSTANCE_URL", peer.base_url)
    monkeypatch.setenv("MOBILIA_MASTODON__ACCESS_TOKEN", f"{SUPPORT}_token")
    monkeypatch.setenv("MOBILIA_MASTODON__REPLY_MODE", "auto")
    url = str(db.engine.url)
    assert main(["--once", "--db", url]) == 0
    assert main(["--once", "--db", url]) == 0  # second run: nothing new, nothing answered twice
    assert len(our_replies(peer, status["id"])) == 1
    out = capsys.readouterr().out
    assert f"{SUPPORT}_token" not in out
