"""Attack run (issue 12): every finding tried black-box against `python app.py` on loopback.

    python -m bench.abuse [--ports 7940-7959] [--only f3_login_bruteforce f4_forwarded_for] [--probe-timeout 120]

Starts the app on a free 127.0.0.1 port over a temporary SQLite database, index, runs folder and
Gradio cache, with the default settings (limits NOT lifted, no trusted proxy), then attacks it
the way an outsider or a low-privileged staff member could: httpx on the API, gradio_client, and
raw Gradio queue calls (events outside the public API included). Each probe is bounded in time.
Prints one JSON object ``{"probes": {name: "held" | "broke" | "n/a"}, "details": {...},
"elapsed_s": ...}`` and exits 1 when a probe broke or could not run (its details say why).
Nothing leaves loopback: the rogue LLM endpoint of f1 is a local recorder.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.live import HOST, ROOT, LiveApp, RawGradio, clean_environ, free_port, parse_ports, start_app

HELD, BROKE, NA = "held", "broke", "n/a"
PASSWORD = "bench-abuse-password-1"
EVALUATOR, ADMIN = "abuse.evaluator", "abuse.admin"
ESCALATE = "Je veux parler à un conseiller"
LOCKED = "Trop de tentatives"
EVAL_CONFIG = """\
evaluation:
  name: {name}
  runs_dir: runs
sets:
  validation_file: "{validation}"
  validation_limit: 1
  eval_files: [datasets/eval/chat_holdout.jsonl]
  eval_limit: 1
generation:
  max_new_tokens: 16
  max_seconds: 20
  threads: 0
candidates:
  - name: extractif
    kind: extractive
{extra}"""
ROGUE_CANDIDATE = """\
  - name: smollm2-base
    kind: llm
    backend: openai
    base_url: {url}
    endpoint_model: default
"""
HOSTILE_POST = ("<img src=x onerror=alert(1)> Panne réseau !! [Cliquez ici pour valider votre compte]"
                "(https://evil.example/phish)")  # fmt: skip
Outcome = tuple[str, dict]


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.abuse`."""
    parser = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", default="", help="loopback ports to use, e.g. 7940-7959 (default: any free one)")
    parser.add_argument(
        "--only", nargs="+", metavar="PROBE", help=f"run only these probes: {SECRET_PROBE}, {', '.join(PROBES)}"
    )
    parser.add_argument("--probe-timeout", type=float, default=120.0, help="seconds one probe may take (max 600)")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds for the app to be ready")
    return parser


# ----------------------------------------------------------------------------- defaults of the attacked app


def default_limit(field_name: str, fallback: str) -> int:
    """Amount of one of the app's default API limits (its default string; ``fallback`` on code without it)."""
    from limits import parse

    try:
        from api.config import ApiSettings

        value = ApiSettings.model_fields[field_name].default
    except (ImportError, KeyError):
        value = fallback
    return parse(value).amount


def default_upload_mb() -> float:
    """The app's default upload limit in MB (10 on code that has none)."""
    from settings import Settings

    info = Settings.model_fields.get("max_upload_mb")
    return float(info.default) if info is not None else 10.0


# ----------------------------------------------------------------------------- a local recorder (rogue LLM endpoint)


class Recorder:
    """A loopback HTTP server standing in for an attacker's LLM endpoint: records every request, answers 400."""

    def __init__(self, port: int) -> None:
        self.hits: list[dict] = []
        self.arrived = threading.Event()
        hits, arrived = self.hits, self.arrived

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                hits.append({"path": self.path, "authorization": self.headers.get("Authorization", ""), "body": body})
                arrived.set()
                payload = b'{"error": {"message": "bench recorder"}}'
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _record

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer((HOST, port), Handler)
        self.url = f"http://{HOST}:{port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, name="recorder", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------- the attacker's session


@dataclass
class Attack:
    """What the probes share: the app, the raw Gradio client, the accounts and the bounds."""

    app: LiveApp
    workdir: Path
    ports: range | None
    taken: set[int]
    timeout: float
    canary: str
    internal_token: str
    raw: RawGradio
    sessions: dict[str, str] = field(default_factory=dict)  # staff username -> Gradio session logged in

    def api(self):
        """An httpx client on the app's /api/v1 (bounded by the probe timeout)."""
        import httpx

        return httpx.Client(base_url=f"{self.app.url}api/v1/", timeout=self.timeout)

    def api_token(self, username: str) -> str:
        """A staff bearer token from the API login."""
        with self.api() as http:
            response = http.post("auth/login", json={"username": username, "password": PASSWORD})
        response.raise_for_status()
        return response.json()["access_token"]

    def ui_login(self, username: str, password: str = PASSWORD, session: str | None = None) -> str:
        """Text of the outputs of one Gradio staff login (the session keeps the principal on success)."""
        event = self.raw.event("staff-login-btn")
        values = {"staff-username": username, "staff-password": password}
        output = self.raw.call(
            event, self.raw.fill(event, values), session or uuid.uuid4().hex, deadline_s=self.timeout
        )
        return json.dumps(output, ensure_ascii=False)

    def staff_session(self, username: str) -> str:
        """A Gradio session logged in as ``username`` (one login per account for the whole run)."""
        if username not in self.sessions:
            session = uuid.uuid4().hex
            text = self.ui_login(username, session=session)
            if "Connecté" not in text:
                raise RuntimeError(f"staff login of {username} failed: {text[:300]}")
            self.sessions[username] = session
        return self.sessions[username]

    def ui(self, elem_id: str, values: dict, session: str, trigger: str = "click") -> dict:
        """Run one Gradio event as a browser of ``session``; its outputs by elem_id."""
        event = self.raw.event(elem_id, trigger)
        output = self.raw.call(event, self.raw.fill(event, values), session, deadline_s=self.timeout)
        return self.raw.named(event, output)

    def gradio_client(self):
        """A gradio_client on the app (one browser session per client)."""
        from gradio_client import Client

        return Client(self.app.url, verbose=False)

    def predict(self, client, *args, api_name: str):
        """``client.predict`` bounded by the probe timeout."""
        return client.submit(*args, api_name=api_name).result(timeout=self.timeout)


def as_text(value) -> str:
    """A component output as searchable text."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# ----------------------------------------------------------------------------- probes, one per finding


def evaluate(attack: Attack, text: str, candidates: list[str], sets: list[str],
             until: Callable[[], bool]) -> tuple[str, str]:  # fmt: skip
    """Start an evaluation from the evaluator's Gradio session: (every message's output, the last status shown).

    Follows the run until it ends, ``until()`` is true or the probe's time is up.
    """
    raw, session = attack.raw, attack.staff_session(EVALUATOR)
    event = raw.event("eval-start")
    values = {"eval-yaml": text, "eval-candidates": candidates, "eval-sets": sets,
              "Questions de validation (0 : toutes)": 1, "Questions par jeu étiqueté (0 : toutes)": 1}  # fmt: skip
    seen, status = [], ""
    for message in raw.messages(event, raw.fill(event, values), session, deadline_s=attack.timeout):
        output = message.get("output") or {}
        seen.append(json.dumps(output, ensure_ascii=False))
        shown = raw.named(event, output.get("data") or []).get("eval-status")
        status = shown if isinstance(shown, str) and shown else status
        if message.get("msg") == "process_completed" or until():
            break
    return "\n".join(seen), status


def probe_config_path(attack: Attack) -> Outcome:
    """f9: an evaluator's config reading a file outside the project's folders."""
    outside = attack.workdir / "outside"
    outside.mkdir(exist_ok=True)
    secret = outside / "secret.jsonl"
    secret.write_text((ROOT / "datasets/eval/chat_holdout.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n")
    text = EVAL_CONFIG.format(name="abuse-path", validation=secret, extra="")
    seen, status = evaluate(attack, text, ["extractif"], ["validation"], until=lambda: False)
    launched = "lancée" in seen
    refused = not launched and ("autorisés" in seen or "outside the allowed" in seen)
    detail = {"config_path": str(secret), "refused": refused, "launched": launched, "status": status[:400]}
    return (HELD if refused and not launched else BROKE if launched else NA), detail


def probe_rogue_endpoint(attack: Attack) -> Outcome:
    """f1: an evaluator points a candidate at their own server: refused, nothing (no key) reaches it."""
    recorder = Recorder(free_port(attack.ports, attack.taken))
    try:
        text = EVAL_CONFIG.format(name="abuse-endpoint", validation="", extra=ROGUE_CANDIDATE.format(url=recorder.url))
        seen, status = evaluate(attack, text, ["smollm2-base"], ["datasets/eval/chat_holdout.jsonl"],
                                until=recorder.arrived.is_set)  # fmt: skip
    finally:
        recorder.close()
    launched = "lancée" in seen
    refused = not launched and "⚠️" in seen and ("endpoint" in seen or "base_url" in seen)
    detail = {"requests_received": len(recorder.hits), "api_key_sent": any(attack.canary in h["authorization"]
              for h in recorder.hits), "refused": refused, "launched": launched, "status": status[:400]}  # fmt: skip
    if recorder.hits or launched:
        return BROKE, detail
    return (HELD if refused else NA), detail


def probe_identity(attack: Attack) -> Outcome:
    """f2: a chat opened (API and gradio_client) with the victim's phone must not rewrite the victim's identity."""
    victim = {"full_name": "Amélie Blanc", "phone": "06 55 44 33 22", "email": "amelie@example.fr"}
    with attack.api() as http:
        opened = http.post("chat/message", json={"message": ESCALATE, "user_info": victim})
        opened.raise_for_status()
        ticket_id = opened.json().get("ticket_id")
        client = attack.gradio_client()
        try:
            attack.predict(client, "Mallory Intrus", victim["phone"], "mallory@evil.example", api_name="/start_chat")
        finally:
            client.close()
        intruder = {"full_name": "Mallory Intrus", "phone": "+33655443322", "email": "mallory@evil.example"}
        http.post("chat/message", json={"message": "Bonjour", "user_info": intruder}).raise_for_status()
        headers = {"Authorization": f"Bearer {attack.api_token(ADMIN)}"}
        rows = http.get("tickets", params={"page_size": 100}, headers=headers).json()["tickets"]
    shown = next((r.get("customer_name") for r in rows if r["id"] == ticket_id), None)
    stored = attack.app.query("SELECT full_name, email FROM customers WHERE phone = ?", ("+33655443322",))
    detail = {"victim_ticket_shows": shown, "customers_rows": [list(r) for r in stored]}
    kept = shown == victim["full_name"] and stored and all(tuple(r) == (victim["full_name"], victim["email"])
                                                           for r in stored)  # fmt: skip
    return (HELD if kept else BROKE), detail


def probe_contact_link(attack: Attack) -> Outcome:
    """f6: a public Mastodon contact link reused by someone else (API, then a browser session) after its first use."""
    handle = f"@victim{secrets.token_hex(3)}@mastodon.example"
    carrying = ("SELECT COUNT(*) FROM conversations WHERE context LIKE ?", (f"%{handle}%",))
    body = {"handle": handle, "post_url": "https://mastodon.example/@victim/1", "status_id": "1",
            "complaint": "Plus de réseau depuis hier", "urgency": "HIGH"}  # fmt: skip
    with attack.api() as http:
        saved = http.post("mastodon/save-context", json=body, headers={"X-Internal-Token": attack.internal_token})
        saved.raise_for_status()
        token = saved.json()["token"]
        first = http.post("chat/message", json={"message": "Toujours rien", "context_token": token, "user_info": {
            "full_name": "Victor Victime", "phone": "06 11 22 33 44"}})  # fmt: skip
        first.raise_for_status()
        reuse = http.post("chat/message", json={"message": "C'est moi aussi", "context_token": token, "user_info": {
            "full_name": "Eve Espionne", "phone": "07 99 88 77 66"}})  # fmt: skip
    detail: dict = {"api_reuse_status": reuse.status_code}
    # The same link opened in another browser (no binding in its storage), then the form submitted.
    session = uuid.uuid4().hex
    note = attack_link_page(attack, token, session)
    detail["browser_note"] = note[:200]
    opened = attack.ui("contact-submit", {"contact-name": "Eve Espionne", "contact-phone": "07 99 88 77 65",
                                          "contact-email": ""}, session)  # fmt: skip
    detail["browser_started"] = "Enchanté" in as_text(opened) or "dossier" in as_text(opened)
    detail["conversations_with_handle"] = attack.app.query(*carrying)[0][0]
    held = reuse.status_code in (403, 409, 410) and detail["conversations_with_handle"] == 1
    return (HELD if held else BROKE), detail


def attack_link_page(attack: Attack, token: str, session: str) -> str:
    """Open ``/?token=…`` as a fresh browser would: the page-load event with the link's query string."""
    raw = attack.raw
    event = raw.load_event("contact-social-note")
    output = raw.call(event, raw.fill(event, {}), session, deadline_s=attack.timeout, params={"token": token})
    return as_text(raw.named(event, output).get("contact-social-note"))


def probe_export_names(attack: Attack) -> Outcome:
    """f8: a customer's name typed in the chat must not come out in the CSV export."""
    first, last, marker = "Zéphyrine", "Quillardeau", "ZX-8107"
    with attack.api() as http:
        http.post("chat/message", json={"message": f"Bonjour, ici {first} {last}, ma box {marker} ne marche plus",
                                        "user_info": {"full_name": f"{first} {last}", "phone": "06 31 41 59 26"}},
                  ).raise_for_status()  # fmt: skip
    today = datetime.now(UTC).date()
    values = {"analytics-export-table": "messages", "analytics-start": str(today - timedelta(days=1)),
              "analytics-end": str(today + timedelta(days=1))}  # fmt: skip
    out = attack.ui("analytics-export", values, attack.staff_session(ADMIN))
    file = out.get("analytics-export-file")
    file = file.get("value", file) if isinstance(file, dict) and "value" in file else file
    if not isinstance(file, dict) or not (file.get("url") or file.get("path")):
        return NA, {"export": as_text(out)[:300]}
    url = file.get("url") or f"{attack.app.url}gradio_api/file={file['path']}"
    csv_text = attack.raw.http.get(url).text
    leaked = [name for name in (first, last) if name in csv_text]
    detail = {"row_exported": marker in csv_text, "names_in_csv": leaked}
    if not detail["row_exported"]:
        return NA, detail
    return (BROKE if leaked else HELD), detail


def probe_social_escaped(attack: Attack) -> Outcome:
    """f8: a hostile Mastodon post shown to staff as text, never as Markdown/HTML (image, phishing link)."""
    from social.store import SocialPostRepository
    from storage import Database

    db = Database(attack.app.db_url)
    try:  # as the monitor stores it
        post, _ = SocialPostRepository(db).insert_if_new({
            "status_id": "abuse-1", "account": "mallory@evil.example", "url": "https://mastodon.example/@mallory/1",
            "content": HOSTILE_POST, "is_complaint": True, "complaint_score": 0.9, "urgency": "HIGH",
            "reason": "panne", "reply_status": "pending", "reply_text": "@mallory Désolés pour ce souci."})  # fmt: skip
    finally:
        db.dispose()
    session = attack.staff_session(ADMIN)
    attack.ui("social-refresh", {}, session)
    shown = as_text(attack.ui("social-queue", {"social-queue": post.id}, session, trigger="change").get("social-post"))
    raw_html, raw_link = "<img" in shown, "](https://evil.example" in shown
    detail = {"html_unescaped": raw_html, "markdown_link_unescaped": raw_link, "shown": shown[:200]}
    if HOSTILE_POST[-20:-1] not in shown.replace("\\", ""):
        return NA, detail  # the post was not shown at all
    return (BROKE if raw_html or raw_link else HELD), detail


def probe_message_flood(attack: Attack) -> Outcome:
    """f3: one gradio_client floods one conversation past the per-conversation limit."""
    limit = default_limit("rate_limit_conversation", "20/minute")
    client = attack.gradio_client()
    statuses, started = [], time.monotonic()
    try:
        attack.predict(client, "Flora Flood", "06 10 20 30 40", "", api_name="/start_chat")
        for i in range(limit + 5):
            statuses.append(attack.predict(client, f"Abus n°{i} : ma facture ?", api_name="/send_message")[-1])
    finally:
        client.close()
    elapsed = time.monotonic() - started
    refused = [s for s in statuses if str(s).startswith("⚠️")]
    stored = attack.app.query("SELECT COUNT(*) FROM messages WHERE role = 'user' AND content LIKE 'Abus n°%'")[0][0]
    detail = {"limit": limit, "sent": len(statuses), "refused": len(refused), "stored": stored,
              "elapsed_s": round(elapsed, 1), "refusal": refused[0] if refused else None}  # fmt: skip
    if refused and stored <= limit:
        return HELD, detail
    return (NA if elapsed > 60 else BROKE), detail  # slower than the window: the limit may not apply


def probe_conversation_flood(attack: Attack) -> Outcome:
    """f3: one gradio_client opens conversation after conversation (after the other probes opened some)."""
    limit = default_limit("rate_limit_conversations_client", "30/hour")
    client = attack.gradio_client()
    results = []
    try:
        for i in range(limit + 5):
            _history, errors = attack.predict(client, f"Client Numéro {chr(65 + i % 26)}", f"07 00 00 01 {i:02d}", "",
                                              api_name="/start_chat")  # fmt: skip
            results.append(isinstance(errors, dict) and errors.get("visible") is True)
    finally:
        client.close()
    total = attack.app.query("SELECT COUNT(*) FROM conversations")[0][0]
    first = results.index(True) if True in results else None
    detail = {"limit": limit, "attempts": len(results), "refused": sum(results), "conversations_stored": total}
    held = first is not None and all(results[first:]) and total <= limit
    return (HELD if held else BROKE), detail


def probe_login_bruteforce(attack: Attack) -> Outcome:
    """f3: wrong staff passwords in a row through the Gradio login event (one browser session)."""
    limit = default_limit("rate_limit_login", "10/minute")
    session = uuid.uuid4().hex
    texts = [attack.ui_login(EVALUATOR, "wrong password", session) for _ in range(max(30, limit + 10))]
    locked = sum(LOCKED in t for t in texts)
    wrong = sum("incorrect" in t for t in texts)
    detail = {"limit": limit, "attempts": len(texts), "wrong_password_answers": wrong, "locked_out": locked}
    return (HELD if locked and wrong <= limit and not any("Connecté" in t for t in texts) else BROKE), detail


def probe_forwarded_for(attack: Attack) -> Outcome:
    """f4: API logins with a new X-Forwarded-For each time must not get a fresh budget."""
    limit = default_limit("rate_limit_login", "10/minute")
    codes = []
    with attack.api() as http:
        for i in range(limit + 12):
            response = http.post("auth/login", json={"username": f"spoof{i}", "password": "x"},
                                 headers={"X-Forwarded-For": f"198.51.100.{i}"})  # fmt: skip
            codes.append(response.status_code)
    first = codes.index(429) if 429 in codes else None
    detail = {"limit": limit, "codes": codes}
    held = first is not None and all(c == 429 for c in codes[first:]) and codes.count(401) <= limit
    return (HELD if held else BROKE), detail


def probe_model_status(attack: Attack) -> Outcome:
    """f9: the public model status says ready/loading/unavailable only: no names, paths or errors."""
    with attack.api() as http:
        body = http.get("model-status").json()
    leaks = sorted(_leaky_keys(body))
    return (BROKE if leaks else HELD), {"public_keys": sorted(body), "leaky_fields": leaks}


def _leaky_keys(value, prefix: str = "") -> set[str]:
    words = ("error", "adapter", "path", "dir", "model", "details")
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            name = f"{prefix}{key}"
            if any(w in key.lower() for w in words) and key != "answer_mode":
                found.add(name)
            found |= _leaky_keys(inner, name + ".")
    elif isinstance(value, str) and ("/" in value or "\\" in value or "Traceback" in value):
        found.add(prefix.rstrip(".") or "value")
    return found


def probe_upload(attack: Attack) -> Outcome:
    """f9: an upload to Gradio over the size limit is refused."""
    limit_mb = default_upload_mb()
    big = b"x" * (int(limit_mb * 1024 * 1024) + 1)
    small = attack.raw.http.post("gradio_api/upload", files={"files": ("small.txt", b"x" * 1024, "text/plain")})
    large = attack.raw.http.post("gradio_api/upload", files={"files": ("big.bin", big, "application/octet-stream")})
    detail = {"limit_mb": limit_mb, "small_status": small.status_code, "oversized_status": large.status_code}
    if small.status_code != 200:
        return NA, detail
    return (HELD if large.status_code == 413 else BROKE), detail


def probe_chat_busy(_attack: Attack) -> Outcome:
    """f7: not black-box: it needs the answer engine to fail after its first streamed piece."""
    return NA, {"reason": "needs a fault injected into the answer engine mid-stream; the busy flag is per-session "
                          "gr.State, invisible to an outside client. Covered by tests/ui/test_chat_tab.py."}  # fmt: skip


# Order matters: the probes that log in or open conversations run before those that exhaust the limits.
PROBES: dict[str, Callable[[Attack], Outcome]] = {
    "f9_model_status_public": probe_model_status,
    "f9_upload_size": probe_upload,
    "f9_config_path_outside": probe_config_path,
    "f1_rogue_llm_endpoint": probe_rogue_endpoint,
    "f2_identity_overwrite": probe_identity,
    "f6_contact_link_reuse": probe_contact_link,
    "f8_export_names": probe_export_names,
    "f8_social_escaped": probe_social_escaped,
    "f7_chat_busy_after_error": probe_chat_busy,
    "f3_message_flood": probe_message_flood,
    "f3_conversation_flood": probe_conversation_flood,
    "f3_login_bruteforce": probe_login_bruteforce,
    "f4_forwarded_for": probe_forwarded_for,
}
SECRET_PROBE = "f5_secret_required"


def probe_secret_required(workdir: Path, ports: range | None, taken: set[int], timeout: float) -> Outcome:
    """f5: `python app.py` on a PostgreSQL URL without MOBILIA_SECRET_KEY must exit with a message (no DB needed)."""
    nothing = free_port(ports, taken)  # nobody listens there: the app must refuse before connecting
    env = {**clean_environ(), "DATABASE_URL": f"postgresql+psycopg://mobilia:pw@{HOST}:{nothing}/mobiliachat",
           "MOBILIA_PORT": str(free_port(ports, taken)), "MOBILIA_HOST": HOST, "HF_HUB_OFFLINE": "1"}  # fmt: skip
    empty = workdir / "f5"
    empty.mkdir()  # no .env there
    try:
        result = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=empty, env=env, capture_output=True,
                                text=True, timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return BROKE, {"exited": False, "note": f"still running after {timeout:.0f} s without a secret"}
    said = "MOBILIA_SECRET_KEY" in result.stderr and "Traceback" not in result.stderr
    detail = {"exit_code": result.returncode, "message": result.stderr.strip()[-300:]}
    return (HELD if result.returncode != 0 and said else BROKE), detail


def create_staff(db_url: str, username: str, role: str) -> None:
    """A staff account through the documented CLI (password on stdin)."""
    result = subprocess.run(
        [sys.executable, "-m", "tickets.users", "--db", db_url, "create", "--username", username, "--role", role],
        input=PASSWORD + "\n", capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"could not create {username}: {result.stderr[-300:]}")


def ready(body: bytes) -> bool:
    """The app's knowledge base is loaded (model-status of today's code, or the older shape)."""
    data = json.loads(body or b"{}")
    return data.get("status") == "ready" or data.get("ready") is True


def run_probe(name: str, probe: Callable[[], Outcome]) -> tuple[str, dict]:
    """One probe: its outcome and seconds; an exception is reported as n/a with the error."""
    started = time.monotonic()
    try:
        status, detail = probe()
    except Exception as exc:  # the attack could not be run here: say why, never hide it
        status, detail = NA, {"error": f"{type(exc).__name__}: {exc}"[:500]}
    detail["seconds"] = round(time.monotonic() - started, 1)
    print(f"[abuse] {name}: {status}", file=sys.stderr, flush=True)
    return status, detail


def main(argv: list[str] | None = None) -> int:
    """Start the app, run the probes, print JSON; exit 1 when one broke or could not run."""
    args = make_parser().parse_args(argv)
    selected = args.only or [SECRET_PROBE, *PROBES]
    unknown = [p for p in selected if p != SECRET_PROBE and p not in PROBES]
    if unknown:
        raise SystemExit(f"unknown probe(s): {', '.join(unknown)}")
    timeout = min(args.probe_timeout, 600.0)
    ports, taken = parse_ports(args.ports), set()
    started = time.monotonic()
    probes, details = {}, {}
    with tempfile.TemporaryDirectory(prefix="mobilia-abuse-") as tmp:
        workdir = Path(tmp)
        if SECRET_PROBE in selected:
            probes[SECRET_PROBE], details[SECRET_PROBE] = run_probe(
                SECRET_PROBE, lambda: probe_secret_required(workdir, ports, taken, timeout)
            )
        names = [n for n in PROBES if n in selected]
        if names:
            run_app_probes(names, workdir, ports, taken, timeout, args.startup_timeout, probes, details)
    failed = [n for n, s in probes.items() if s == BROKE or "error" in details[n]]
    print(json.dumps({"probes": probes, "details": details, "elapsed_s": round(time.monotonic() - started, 1)},
                     indent=2, ensure_ascii=False, default=str))  # fmt: skip
    return 1 if failed else 0


def run_app_probes(names: list[str], workdir: Path, ports: range | None, taken: set[int], timeout: float,
                   startup_timeout: float, probes: dict, details: dict) -> None:  # fmt: skip
    """Start the app with default limits, create the staff accounts, then run ``names`` in order."""
    canary, internal = f"bench-canary-{secrets.token_hex(8)}", secrets.token_urlsafe(24)
    env = {**clean_environ(), "MOBILIA_SECRET_KEY": secrets.token_urlsafe(48), "MOBILIA_API__INTERNAL_TOKEN": internal,
           "MOBILIA_RAG__LLM__API_KEY": canary, "MOBILIA_RAG__INDEX_DIR": str(workdir / "index"),
           "MOBILIA_RUNS_DIR": str(workdir / "runs"), "GRADIO_TEMP_DIR": str(workdir / "gradio"),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}  # fmt: skip
    with start_app(workdir, env, free_port(ports, taken), startup_timeout, ready) as app:
        create_staff(app.db_url, EVALUATOR, "evaluator")
        create_staff(app.db_url, ADMIN, "admin")
        raw = RawGradio(app.url, timeout=timeout)
        attack = Attack(app, workdir, ports, taken, timeout, canary, internal, raw)
        try:
            for name in names:
                probes[name], details[name] = run_probe(name, lambda probe=PROBES[name]: probe(attack))
        finally:
            raw.close()


if __name__ == "__main__":
    sys.exit(main())
