"""Staff endpoints: login and JWT checks (missing, forged, expired, wrong role, deactivated), tickets, analytics."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.api.conftest import PASSWORD, SECRET, start_chat

STAFF_CALLS = [
    ("get", "/api/v1/tickets", None),
    ("post", "/api/v1/tickets", {"category": "technique", "summary": "Panne"}),
    ("patch", "/api/v1/tickets/1", {"note": "vu"}),
    ("get", "/api/v1/analytics", None),
]


def call(client, method: str, url: str, body, headers=None):
    return client.request(method, url, json=body, headers=headers or {})


@pytest.mark.parametrize(("method", "url", "body"), STAFF_CALLS)
def test_staff_endpoints_refuse_missing_and_forged_tokens(client, method, url, body) -> None:
    assert call(client, method, url, body).status_code == 401
    assert call(client, method, url, body, {"Authorization": "Bearer not.a.jwt"}).status_code == 401
    forged = jwt.encode(
        {"sub": "1", "role": "admin", "exp": time.time() + 60}, "guessed-secret-" * 4, algorithm="HS256"
    )
    response = call(client, method, url, body, {"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"


def test_expired_and_alg_none_tokens_are_refused(client, staff_tokens) -> None:
    codec = client.app.state.api.tokens
    principal = client.services.staff.authenticate("admin1", PASSWORD)
    expired = codec.issue(principal, now=time.time() - 7200)
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    unsigned = jwt.encode(
        {
            "sub": str(principal.user_id),
            "role": "admin",
            "iss": "mobiliachat",
            "aud": "mobiliachat-api",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        None,
        algorithm="none",
    )
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {unsigned}"}).status_code == 401
    # signed with the raw app secret instead of the derived sub-key: refused too
    raw = jwt.encode(jwt.decode(codec.issue(principal), options={"verify_signature": False}), SECRET, "HS256")
    assert client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_login_refuses_bad_credentials(client, staff_tokens) -> None:
    bad = client.post("/api/v1/auth/login", json={"username": "agent1", "password": "wrong password"})
    assert bad.status_code == 401 and "incorrect" in bad.json()["detail"]
    assert client.post("/api/v1/auth/login", json={"username": "agent1"}).status_code == 422


def test_roles_are_checked_per_area(client, staff_tokens) -> None:
    assert client.get("/api/v1/tickets", headers=staff_tokens["trainer"]).status_code == 403
    assert client.get("/api/v1/analytics", headers=staff_tokens["trainer"]).status_code == 200
    assert client.get("/api/v1/tickets", headers=staff_tokens["agent"]).status_code == 200


def test_role_and_deactivation_are_rechecked_on_each_call(client, staff_tokens) -> None:
    from storage.models import StaffUser

    with client.services.db.session() as s:
        s.query(StaffUser).filter_by(username="agent1").update({"role": "trainer"})
    assert client.get("/api/v1/tickets", headers=staff_tokens["agent"]).status_code == 403
    client.services.staff.deactivate("admin1")
    response = client.get("/api/v1/tickets", headers=staff_tokens["admin"])
    assert response.status_code == 401 and "désactivé" in response.json()["detail"]


def test_ticket_lifecycle(client, staff_tokens) -> None:
    agent = staff_tokens["agent"]
    chat = start_chat(client)
    created = client.post(
        "/api/v1/tickets",
        headers=agent,
        json={
            "conversation_id": chat["conversation_id"],
            "category": "facturation",
            "priority": "HIGH",
            "summary": "Double prélèvement",
        },
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert ticket["status"] == "OPEN" and ticket["events"][0]["actor"] == "agent1"
    again = client.post(
        "/api/v1/tickets",
        headers=agent,
        json={"conversation_id": chat["conversation_id"], "category": "facturation", "summary": "encore"},
    )
    assert again.status_code == 200 and again.json()["id"] == ticket["id"]

    page = client.get("/api/v1/tickets", headers=agent, params={"status": "OPEN", "priority": "HIGH"}).json()
    assert page["total"] == 1 and page["tickets"][0]["id"] == ticket["id"]
    assert client.get(f"/api/v1/tickets/{ticket['id']}", headers=agent).json()["summary"] == "Double prélèvement"

    url = f"/api/v1/tickets/{ticket['id']}"
    moved = client.patch(url, headers=agent, json={"status": "IN_PROGRESS", "assignee": "agent1", "note": "Je regarde"})
    assert moved.status_code == 200 and moved.json()["status"] == "IN_PROGRESS"
    assert moved.json()["assignee"] == "agent1"
    assert client.patch(url, headers=agent, json={"status": "OPEN"}).status_code in (200, 409)
    assert client.patch(url, headers=agent, json={"status": "CLOSED"}).status_code == 200
    assert client.patch(url, headers=agent, json={"status": "IN_PROGRESS"}).status_code == 409
    assert client.patch(url, headers=agent, json={}).status_code == 422
    assert client.patch("/api/v1/tickets/999999", headers=agent, json={"note": "x"}).status_code == 404
    assert client.patch(url, headers=agent, json={"status": "DONE"}).status_code == 422
    assert client.patch(url, headers=agent, json={"assignee": "nobody"}).status_code == 422


def test_a_chat_opened_with_someone_elses_phone_is_flagged_not_merged(client, staff_tokens) -> None:
    """Finding 2 of issue 12: the intruder's form leaves the victim's identity as it was; both tickets say who wrote."""
    escalate = "Je veux parler à un conseiller"
    victim = start_chat(client, escalate)
    intruder = start_chat(client, escalate, full_name="Mallory Intrus", email="mallory@evil.example")
    assert victim["ticket_id"] and intruder["ticket_id"] and victim["ticket_id"] != intruder["ticket_id"]

    agent = staff_tokens["agent"]
    mine = client.get(f"/api/v1/tickets/{victim['ticket_id']}", headers=agent).json()
    theirs = client.get(f"/api/v1/tickets/{intruder['ticket_id']}", headers=agent).json()
    assert mine["contact"] == {
        "full_name": "Amélie Blanc",
        "phone": "+33655443322",
        "email": "amelie@example.fr",
        "name_conflict": True,
        "other_names": ["Mallory Intrus"],
    }
    assert theirs["contact"]["full_name"] == "Mallory Intrus" and theirs["contact"]["email"] == "mallory@evil.example"
    assert theirs["contact"]["name_conflict"] is True and theirs["contact"]["other_names"] == ["Amélie Blanc"]
    customer = client.services.chat.customers.get(mine["customer_id"])
    assert (customer.full_name, customer.email) == ("Amélie Blanc", "amelie@example.fr")  # not overwritten
    rows = client.get("/api/v1/tickets", headers=agent).json()["tickets"]
    assert {r["id"]: r["customer_name"] for r in rows} == {
        victim["ticket_id"]: "Amélie Blanc",
        intruder["ticket_id"]: "Mallory Intrus",
    }


def test_ticket_bad_inputs_are_4xx_and_store_nothing(client, staff_tokens) -> None:
    from sqlalchemy import func, select

    from storage.models import Ticket

    agent = staff_tokens["agent"]
    bad = [
        {"category": "technique"},
        {"category": "<script>", "summary": "x"},
        {"category": "technique", "summary": ""},
        {"category": "technique", "summary": "x" * 2001},
        {"category": "technique", "summary": "x", "priority": "CRITICAL"},
        {"category": "technique", "summary": "x", "conversation_id": "' OR 1=1 --"},
    ]
    for body in bad:
        assert client.post("/api/v1/tickets", headers=agent, json=body).status_code == 422, body
    missing = client.post(
        "/api/v1/tickets", headers=agent, json={"category": "technique", "summary": "x", "conversation_id": "f" * 32}
    )
    assert missing.status_code == 404
    with client.services.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0
    assert client.get("/api/v1/tickets", headers=agent, params={"page_size": 1000}).status_code == 422


def test_analytics_kpis_and_bad_dates(client, staff_tokens) -> None:
    start_chat(client)
    response = client.get("/api/v1/analytics", headers=staff_tokens["admin"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kpis"]["conversations"] >= 1 and len(body["conversations_daily"]) == 30
    reversed_range = client.get(
        "/api/v1/analytics", headers=staff_tokens["admin"], params={"start": "2026-02-01", "end": "2026-01-01"}
    )
    assert reversed_range.status_code == 422 and "date" in reversed_range.json()["detail"].lower()
    assert client.get("/api/v1/analytics", headers=staff_tokens["admin"], params={"start": "hier"}).status_code == 422
    for edge in ({"end": "9999-12-31"}, {"start": "0001-01-01", "end": "0001-01-02"}):
        assert client.get("/api/v1/analytics", headers=staff_tokens["admin"], params=edge).status_code == 422


def test_save_context_issues_a_working_chat_link(make_client) -> None:
    client = make_client(internal_token="internal-secret-123")
    body = {
        "handle": "@carla@mastodon.example",
        "post_url": "https://mastodon.example/@carla/1",
        "status_id": "1",
        "complaint": "Toujours pas de 4G à Lyon !",
        "urgency": "HIGH",
    }
    assert client.post("/api/v1/mastodon/save-context", json=body).status_code == 401
    assert (
        client.post("/api/v1/mastodon/save-context", json=body, headers={"X-Internal-Token": "nope"}).status_code == 401
    )
    response = client.post(
        "/api/v1/mastodon/save-context", json=body, headers={"X-Internal-Token": "internal-secret-123"}
    )
    assert response.status_code == 201, response.text
    saved = response.json()
    assert saved["link"].endswith(f"?token={saved['token']}")
    assert client.services.social.tokens.resolve(saved["token"])["complaint"] == body["complaint"]
    bad = {**body, "post_url": "javascript:alert(1)"}
    assert (
        client.post(
            "/api/v1/mastodon/save-context", json=bad, headers={"X-Internal-Token": "internal-secret-123"}
        ).status_code
        == 422
    )


def test_save_context_for_staff_needs_the_social_area(client, staff_tokens) -> None:
    body = {"handle": "@dan", "post_url": "https://mastodon.example/@dan/2", "complaint": "Facture fausse"}
    assert client.post("/api/v1/mastodon/save-context", json=body, headers=staff_tokens["trainer"]).status_code == 403
    assert client.post("/api/v1/mastodon/save-context", json=body, headers=staff_tokens["agent"]).status_code == 201


def test_health_model_status_and_docs(client) -> None:
    assert client.get("/api/v1/health").json() == {"status": "ok", "database": "ok", "redis": "disabled"}
    status = client.get("/api/v1/model-status").json()
    assert status == {"status": "ready", "answer_mode": "extractive"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/chat/message",
        "/api/v1/tickets",
        "/api/v1/tickets/{ticket_id}",
        "/api/v1/analytics",
        "/api/v1/mastodon/save-context",
        "/api/v1/auth/login",
        "/api/v1/health",
        "/api/v1/model-status",
        "/api/v1/chat/conversation/{conversation_id}/messages",
    } <= paths.keys()


def test_public_model_status_leaks_no_path_error_or_name(client, staff_tokens) -> None:
    """The probe: an anonymous client reads adapter paths, model names and error strings from /model-status."""
    services = client.services
    services.startup_error = "index introuvable : /srv/mobilia/data/index (PermissionError)"
    public = client.get("/api/v1/model-status")
    assert public.status_code == 200 and public.json() == {"status": "unavailable", "answer_mode": "extractive"}
    for secret in ("/srv/", "PermissionError", "embedding", "adapter", "details"):
        assert secret not in public.text
    staff = client.get("/api/v1/model-status", headers=staff_tokens["agent"]).json()
    assert staff["status"] == "unavailable" and staff["error"] == services.startup_error
    assert staff["embedding_model"] and "llm" in staff["details"]
    assert client.get("/api/v1/model-status", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_the_api_offers_no_way_to_change_the_chat_model(client) -> None:
    """Promotion and rollback exist only in the admins' evaluation tab (role re-checked in each callback)."""
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if any(word in p for word in ("promot", "rollback", "chat-model", "proposal"))]
