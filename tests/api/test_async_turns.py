"""The API's chat turn on the event loop: same answers, same storage, same retries as in a thread.

The server's lifespan opens the turns' repository (``ApiContext.open_turns``: psycopg's asynchronous
connections on PostgreSQL, the statements run on the loop on SQLite), so every client here is used inside
``with``. ``async_turns=False`` gives the threaded path, which the other API tests cover as well.
"""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rag.chat import AGENT_HANDLES_TEXT
from storage import IdempotencyKey, Message, Ticket
from tests.api.conftest import CUSTOMER, QUESTION, build_api_services

URL = "/api/v1/chat/message"
GUARD_S = 120  # only stops a hang
pytestmark = pytest.mark.all_backends


@pytest.fixture
def serve(db, engine):
    """Factory: a started API (lifespan run) whose ``ChatService.send_async`` calls are counted."""
    started = []

    def start(answer_engine=engine, **api) -> TestClient:
        lifted = {"rate_limit_ip": "1000/minute", "rate_limit_conversations_client": "1000/hour"}
        services = build_api_services(db, answer_engine, api={**lifted, **api})
        from api import create_api

        client = TestClient(create_api(services), raise_server_exceptions=False)
        client.__enter__()
        started.append(client)
        client.services = services
        client.on_loop = []
        send_async = services.chat.send_async

        async def counted(session, text, idempotency, turns):
            client.on_loop.append(text)
            return await send_async(session, text, idempotency, turns)

        services.chat.send_async = counted
        return client

    yield start
    for client in started:
        client.__exit__(None, None, None)
        client.app.state.api.webhooks.stop()


def _open(client) -> tuple[dict, dict]:
    opened = client.post(URL, json={"message": QUESTION, "user_info": CUSTOMER})
    assert opened.status_code == 200, opened.text
    body = opened.json()
    return body, {"X-Conversation-Key": body["conversation_key"]}


def _messages(client, conversation_id: str) -> list[tuple[str, str]]:
    with client.services.db.read() as session:
        rows = session.execute(
            select(Message.role, Message.content).where(Message.conversation_id == conversation_id).order_by(Message.id)
        )
        return [tuple(row) for row in rows]


def _keys(client) -> int:
    with client.services.db.read() as session:
        return session.scalar(select(func.count()).select_from(IdempotencyKey))


def _at_once(client, body: dict, headers: dict, calls: int = 4) -> list:
    """The same request sent by ``calls`` threads at once; their responses."""
    responses, start = [], threading.Barrier(calls)

    def send() -> None:
        start.wait(GUARD_S)
        responses.append(client.post(URL, json=body, headers=headers))

    threads = [threading.Thread(target=send) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD_S)
    return responses


def _comparable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("conversation_id", "conversation_key")}


def test_messages_are_answered_on_the_loop_with_the_threaded_paths_results(serve, db_backend):
    client = serve()
    threaded = serve(async_turns=False)
    assert client.app.state.api.turns is not None
    assert threaded.app.state.api.turns is None
    conversations = {}
    for name, api in (("loop", client), ("threads", threaded)):
        opened, headers = _open(api)
        replies = []
        for text in ("Comment obtenir mon code RIO ?", "et en 5G ?", "Merci !"):
            body = {"conversation_id": opened["conversation_id"], "message": text}
            response = api.post(URL, json=body, headers=headers)
            assert response.status_code == 200, response.text
            replies.append(_comparable(response.json()))
        conversations[name] = (opened["conversation_id"], replies)
    assert conversations["loop"][1] == conversations["threads"][1]  # same answers, sources and links
    opening = [QUESTION] if db_backend == "postgresql" else []  # PostgreSQL opens conversations on the loop too
    assert client.on_loop == [*opening, "Comment obtenir mon code RIO ?", "et en 5G ?", "Merci !"]
    assert threaded.on_loop == []
    stored = [_messages(api, conversations[name][0]) for name, api in (("loop", client), ("threads", threaded))]
    assert stored[0] == stored[1] and len(stored[0]) == 8  # the opening's turn and three more, each once


def test_a_retry_replays_the_first_response_and_stores_nothing_new(serve):
    client = serve()
    opened, headers = _open(client)
    headers = {**headers, "Idempotency-Key": "loop-0001-aaaa"}
    body = {"conversation_id": opened["conversation_id"], "message": "Comment payer ma facture ?"}
    first = client.post(URL, json=body, headers=headers)
    assert first.status_code == 200 and "Idempotency-Replayed" not in first.headers
    stored = (_messages(client, opened["conversation_id"]), _keys(client))
    for _ in range(2):
        again = client.post(URL, json=body, headers=headers)
        assert again.status_code == 200 and again.json() == first.json()
        assert again.headers["Idempotency-Replayed"] == "true"
    reused = client.post(URL, json={**body, "message": "Autre chose"}, headers=headers)
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["detail"]
    assert (_messages(client, opened["conversation_id"]), _keys(client)) == stored


def test_concurrent_calls_with_one_key_store_one_turn_and_get_one_response(serve):
    client = serve()
    opened, headers = _open(client)
    headers = {**headers, "Idempotency-Key": "loop-0002-bbbb"}
    body = {"conversation_id": opened["conversation_id"], "message": "Je n'ai plus de réseau depuis ce matin"}
    responses = _at_once(client, body, headers)
    assert [r.status_code for r in responses] == [200] * 4
    assert len({str(_comparable(r.json())) for r in responses}) == 1
    assert [r.headers.get("Idempotency-Replayed") for r in responses].count(None) == 1
    assert _messages(client, opened["conversation_id"])[2:] == [("user", body["message"]),
                                                              ("assistant", responses[0].json()["response"])]  # fmt: skip


def test_an_escalation_and_an_agent_held_conversation_are_stored_as_in_a_thread(serve, db_backend):
    client = serve()
    opened, headers = _open(client)
    threaded, created = [], []
    store_turn = client.services.chat._store_turn
    client.services.chat._store_turn = lambda *args: threaded.append(args) or store_turn(*args)
    client.services.tickets.subscribe(lambda event, ticket: created.append((event, ticket.id)))
    body = {"conversation_id": opened["conversation_id"], "message": "je veux parler à un conseiller, toujours pas de réseau"}
    escalated = client.post(URL, json=body, headers={**headers, "Idempotency-Key": "loop-0003-cccc"})
    assert escalated.status_code == 200, escalated.text
    reply = escalated.json()
    assert reply["needs_escalation"] and reply["ticket_id"] is not None and f"n° {reply['ticket_id']}" in reply["notice"]
    assert [role for role, _ in _messages(client, opened["conversation_id"])][2:] == ["user", "assistant", "system"]
    again = client.post(URL, json=body, headers={**headers, "Idempotency-Key": "loop-0003-cccc"})
    assert again.json() == reply and len(_messages(client, opened["conversation_id"])) == 5
    ticket = client.services.tickets.get(reply["ticket_id"])
    assert (ticket.status, ticket.priority, ticket.customer_id) == ("OPEN", "MEDIUM", client.services.chat.conversations.get(opened["conversation_id"]).customer_id)
    assert [e.kind for e in ticket.events] == ["created"] and ticket.sla_due_at is not None
    assert client.services.chat.conversations.get(opened["conversation_id"]).status == "escalated"
    assert created[:2] == [("ticket.created", ticket.id), ("conversation.escalated", ticket.id)]
    # Asked again: the open ticket is only marked by the turn's statement.
    repeat = client.post(URL, json={**body, "message": "toujours rien, je veux un conseiller"}, headers=headers)
    assert repeat.status_code == 200 and repeat.json()["ticket_id"] == reply["ticket_id"], repeat.text
    assert repeat.json()["notice"] == reply["notice"]
    assert [role for role, _ in _messages(client, opened["conversation_id"])][5:] == ["user", "assistant", "system"]
    assert (threaded == []) == (db_backend == "postgresql")  # SQLite: the ticket service stores escalations
    with client.services.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1

    client.services.chat.conversations.set_status(opened["conversation_id"], "agent")
    held = client.post(URL, json={**body, "message": "Vous êtes là ?"}, headers=headers)
    assert held.status_code == 200
    assert held.json()["response"] is None and held.json()["notice"] == AGENT_HANDLES_TEXT
    assert _messages(client, opened["conversation_id"])[-1] == ("user", "Vous êtes là ?")


def test_a_wrong_key_or_an_unknown_conversation_gets_404_and_the_lifespan_closes_the_connections(serve, db_backend):
    client = serve()
    _, headers = _open(client)
    other, _ = _open(client)
    stolen = client.post(URL, json={"conversation_id": other["conversation_id"], "message": "Bonjour"}, headers=headers)
    assert stolen.status_code == 404
    unknown = "0" * 32
    forged = client.app.state.api.keys.key_for(unknown)  # a valid key for a conversation that does not exist
    missing = client.post(URL, json={"conversation_id": unknown, "message": "Bonjour"}, headers={"X-Conversation-Key": forged})
    assert missing.status_code == 404
    turns = client.app.state.api.turns
    client.__exit__(None, None, None)
    assert client.app.state.api.turns is None
    if db_backend == "postgresql":
        assert turns.pool.closed


def test_answers_from_the_worker_processes_are_awaited_on_the_loop(serve, shipped_config, engine):
    from rag.answer import AnswerEngine

    pooled = AnswerEngine(shipped_config.model_copy(update={"answer_processes": 1}))
    assert pooled.start_processes() == 1
    try:
        calls = []
        answer_async = pooled.pool.answer_async

        async def counted(*args):
            calls.append(args[0])
            return await answer_async(*args)

        pooled.pool.answer_async = counted
        client = serve(answer_engine=pooled)
        opened, headers = _open(client)
        body = {"conversation_id": opened["conversation_id"], "message": "Comment activer ma carte SIM ?"}
        response = client.post(URL, json=body, headers=headers)
        assert response.status_code == 200 and calls[-1:] == ["Comment activer ma carte SIM ?"]
        assert response.json()["response"] == engine.answer(body["message"], previous_question=QUESTION).text
    finally:
        pooled.close()


def test_a_sqlite_write_that_would_wait_for_another_writer_goes_to_a_thread(serve, db_backend):
    if db_backend != "sqlite":
        pytest.skip("PostgreSQL's rows lock themselves: nothing queues in the process")
    client = serve()
    opened, headers = _open(client)
    db, queued = client.services.db, threading.Event()
    write_connection = db.write_connection

    def traced():  # the path that waits for SQLite's writer locks
        queued.set()
        return write_connection()

    db.write_connection = traced
    body = {"conversation_id": opened["conversation_id"], "message": "Comment payer ma facture ?"}
    assert client.post(URL, json=body, headers=headers).status_code == 200
    assert not queued.is_set()  # the locks were free: written on the loop
    holding, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with write_connection():
            holding.set()
            release.wait(GUARD_S)

    holder = threading.Thread(target=hold_the_writer)
    holder.start()
    assert holding.wait(GUARD_S)
    replies = []
    sender = threading.Thread(target=lambda: replies.append(client.post(URL, json={**body, "message": "Et par carte ?"}, headers=headers)))
    sender.start()
    try:
        assert queued.wait(GUARD_S)  # the turn's write waits in a thread of the pool...
        health = []  # ...while the loop goes on serving (a blocked loop would leave this request waiting)
        probe = threading.Thread(target=lambda: health.append(client.get("/api/v1/health").status_code))
        probe.start()
        probe.join(GUARD_S)
        assert health == [200]
    finally:
        release.set()
        holder.join(GUARD_S)
        sender.join(GUARD_S)
    assert replies[0].status_code == 200, replies[0].text
    stored = _messages(client, opened["conversation_id"])[-2:]
    assert stored == [("user", "Et par carte ?"), ("assistant", replies[0].json()["response"])]


def _count_reads(client) -> list[str]:
    """The conversation reads the API's turn repository sends to PostgreSQL, as they happen."""
    from storage.repositories import _statements

    turns, reads = client.app.state.api.turns, []
    run = turns._run
    stamped = (_statements().recent_stamped, _statements().recent_and_key_stamped)

    async def counted(connection, statement, values):
        if statement in stamped:
            reads.append(values["conversation_id"])
        return await run(connection, statement, values)

    turns._run = counted
    return reads


def _postgresql_only(db_backend: str) -> None:
    if db_backend != "postgresql":
        pytest.skip("SQLite's read runs in this process: its turns read every time")


def test_a_conversation_this_process_wrote_last_is_not_read_again_and_answers_the_same(serve, db_backend):
    _postgresql_only(db_backend)
    client, reading = serve(), serve(remembered_conversations=0)
    replies, stored = {}, {}
    for name, api in (("remembered", client), ("read", reading)):
        reads = _count_reads(api)
        opened, headers = _open(api)
        replies[name] = []
        for n, text in enumerate(("Comment obtenir mon code RIO ?", "et en 5G ?", "Merci !", "Comment payer ma facture ?")):
            response = api.post(URL, json={"conversation_id": opened["conversation_id"], "message": text},
                                headers={**headers, "Idempotency-Key": f"{name}-remember-{n:04d}"})  # fmt: skip
            assert response.status_code == 200, response.text
            replies[name].append(_comparable(response.json()))
        stored[name] = _messages(api, opened["conversation_id"])
        assert len(reads) == (0 if name == "remembered" else 5)  # opened on the loop: never read again
    assert replies["remembered"] == replies["read"] and stored["remembered"] == stored["read"]


def test_what_another_writer_changed_is_seen_by_the_next_turn(serve, db_backend):
    _postgresql_only(db_backend)
    from storage.models import utcnow

    client = serve()
    other_replica = serve()  # the same database, its own memory: a customer's turns may alternate between them
    reads = _count_reads(client)
    opened, headers = _open(client)
    conversation_id = opened["conversation_id"]

    def send(api, text: str, conversation: str = conversation_id, keyed: dict = headers) -> dict:
        response = api.post(URL, json={"conversation_id": conversation, "message": text}, headers=keyed)
        assert response.status_code == 200, response.text
        return response.json()

    send(client, "Comment obtenir mon code RIO ?")
    send(client, "Comment payer ma facture ?")  # remembered: not read
    assert len(reads) == 0
    # Another replica answers a turn: this one's memory is out of date, so its next turn is answered again from
    # the database, with the other replica's question as the previous one.
    send(other_replica, "Comment obtenir mon code RIO ?")
    follow_up = send(client, "et en 5G ?")
    reference = serve(remembered_conversations=0)  # the same four turns in one process that reads every time
    alone, alone_headers = _open(reference)
    for text in ("Comment obtenir mon code RIO ?", "Comment payer ma facture ?", "Comment obtenir mon code RIO ?"):
        send(reference, text, alone["conversation_id"], alone_headers)
    assert _comparable(follow_up) == _comparable(send(reference, "et en 5G ?", alone["conversation_id"], alone_headers))
    assert len(reads) == 1
    send(client, "Merci !")
    assert len(reads) == 2  # from now on this conversation is read on each turn: two processes take turns in it
    # In another conversation, a ticket's notice (it touches no conversation row), then an agent taking it.
    second, second_headers = _open(client)
    for text in ("Comment obtenir mon code RIO ?", "Comment payer ma facture ?"):
        send(client, text, second["conversation_id"], second_headers)
    assert len(reads) == 2
    with client.services.db.write() as session:
        session.add(Message(conversation_id=second["conversation_id"], role="system", content="Ticket résolu.",
                            created_at=utcnow()))  # fmt: skip
    send(client, "Merci !", second["conversation_id"], second_headers)
    assert len(reads) == 3
    client.services.chat.conversations.set_status(second["conversation_id"], "agent")
    held = send(client, "Vous êtes là ?", second["conversation_id"], second_headers)
    assert held["response"] is None and held["notice"] == AGENT_HANDLES_TEXT
    assert _messages(client, second["conversation_id"])[-3:] == [
        ("user", "Merci !"), ("assistant", _messages(client, second["conversation_id"])[-2][1]), ("user", "Vous êtes là ?")]  # fmt: skip


def test_an_escalation_after_a_remembered_turn_is_decided_on_the_stored_conversation(serve, db_backend):
    _postgresql_only(db_backend)
    client = serve()
    reads = _count_reads(client)
    opened, headers = _open(client)
    body = {"conversation_id": opened["conversation_id"], "message": "Comment payer ma facture ?"}
    assert client.post(URL, json=body, headers=headers).status_code == 200
    escalating = {**body, "message": "je veux parler à un conseiller, toujours pas de réseau"}
    escalated = client.post(URL, json=escalating, headers=headers)
    assert escalated.status_code == 200, escalated.text
    assert escalated.json()["ticket_id"] is not None and len(reads) == 1  # read before the ticket opens
    assert [role for role, _ in _messages(client, opened["conversation_id"])][4:] == ["user", "assistant", "system"]
    assert client.services.chat.conversations.get(opened["conversation_id"]).status == "escalated"
    # Repeats mark the open ticket: the first reads the conversation (nothing remembered after the ticket opened),
    # the next ones are remembered, the ticket checked by their statement.
    ticket_id = escalated.json()["ticket_id"]
    for text in ("toujours rien, je veux un conseiller", "je veux parler à un conseiller maintenant"):
        repeat = client.post(URL, json={**body, "message": text}, headers=headers)
        assert repeat.status_code == 200 and repeat.json()["ticket_id"] == ticket_id, repeat.text
        assert len(reads) == 2
    # An agent resolves the ticket (nothing in the conversation changes): the next escalation's remembered
    # repeat finds its ticket changed, and the turn is answered again from the database, which reopens it.
    client.services.tickets.transition(ticket_id, "RESOLVED", "agent-1")
    again = client.post(URL, json={**body, "message": "encore en panne, je veux un conseiller"}, headers=headers)
    assert again.status_code == 200 and again.json()["ticket_id"] is not None, again.text
    assert len(reads) == 3
    with client.services.db.read() as session:
        live = session.scalars(select(Ticket).where(Ticket.conversation_id == opened["conversation_id"],
                                                    Ticket.status != "CLOSED")).all()  # fmt: skip
    assert [t.status for t in live] != ["RESOLVED"] and len(live) == 1
    assert _messages(client, opened["conversation_id"])[-3][1] == "encore en panne, je veux un conseiller"


def _opened(client) -> tuple[int, int]:
    """Conversations and messages stored so far."""
    from storage import Conversation

    with client.services.db.read() as session:
        return (session.scalar(select(func.count()).select_from(Conversation)),
                session.scalar(select(func.count()).select_from(Message)))  # fmt: skip


def test_an_opening_on_the_loop_is_stored_once_and_a_refused_one_leaves_nothing(serve, db_backend):
    client = serve()
    body = {"message": QUESTION, "user_info": CUSTOMER}
    first = client.post(URL, json=body, headers={"Idempotency-Key": "open-loop-0001"})
    assert first.status_code == 200 and first.json()["conversation_key"], first.text
    assert client.on_loop == ([QUESTION] if db_backend == "postgresql" else [])  # PostgreSQL opens on the loop
    stored = _opened(client)
    again = client.post(URL, json=body, headers={"Idempotency-Key": "open-loop-0001"})
    assert again.status_code == 200 and again.json() == first.json() and again.headers["Idempotency-Replayed"] == "true"
    assert _opened(client) == stored
    # Its first turn fails to be stored: no conversation is left behind, and a retry opens one normally.
    def refused(*args, **kwargs):
        raise RuntimeError("the database went away")

    async def refused_on_the_loop(*args, **kwargs):
        refused()

    owner, name = ((client.app.state.api.turns, "append_turn") if db_backend == "postgresql"
                   else (client.services.chat, "_write_turn"))  # fmt: skip
    setattr(owner, name, refused_on_the_loop if db_backend == "postgresql" else refused)
    assert client.post(URL, json=body, headers={"Idempotency-Key": "open-loop-0002"}).status_code == 500
    assert _opened(client) == stored
    delattr(owner, name)  # the class' own method again
    retried = client.post(URL, json=body, headers={"Idempotency-Key": "open-loop-0002"})
    assert retried.status_code == 200 and _opened(client) == (stored[0] + 1, stored[1] + 2)
    # Invalid contact details get the threaded path's French 422 (nothing opened).
    invalid = client.post(URL, json={**body, "user_info": {**CUSTOMER, "phone": "12"}})
    assert invalid.status_code == 422 and "Coordonnées invalides" in invalid.json()["detail"]
    assert _opened(client) == (stored[0] + 1, stored[1] + 2)


def test_concurrent_openings_with_one_key_open_one_conversation(serve):
    client = serve()
    responses = _at_once(client, {"message": QUESTION, "user_info": CUSTOMER}, {"Idempotency-Key": "open-loop-0003"})
    assert [r.status_code for r in responses] == [200] * 4
    assert len({r.json()["conversation_id"] for r in responses}) == 1
    assert [r.headers.get("Idempotency-Replayed") for r in responses].count(None) == 1
    assert _opened(client) == (1, 2)
