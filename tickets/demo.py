"""Fill a SEPARATE database with realistic synthetic support history, for demos and benchmarks.

    python -m tickets.demo --db sqlite:///data/demo.db --days 90 --conversations 20000 --seed 42

Customers get fake, well-formed French mobile numbers of the +33 6 00 00 xx xx test range and
example.org e-mails; conversations, user/assistant messages (intent, confidence, latency in
``meta``), feedback, escalations into tickets (priority, SLA, resolution, CSAT) and Mastodon
posts follow plausible distributions. Rows are bulk-inserted in batches. The command refuses the
app's own database and a non-empty one unless told otherwise.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, literal, select
from sqlalchemy.engine import make_url

from storage.db import Database
from storage.models import (
    Conversation,
    Customer,
    Feedback,
    MastodonPost,
    Message,
    Ticket,
    TicketEvent,
    utcnow,
)
from tickets.domain import SLA_HOURS, Priority

PHONE_PREFIX = "+3360000"  # + 4 digits: 10,000 test numbers
MAX_CUSTOMERS = 10_000
BATCH = 5_000  # conversations generated and inserted per transaction

FIRST_NAMES = (
    "Camille",
    "Léa",
    "Manon",
    "Chloé",
    "Inès",
    "Sarah",
    "Julie",
    "Emma",
    "Lucas",
    "Hugo",
    "Louis",
    "Nathan",
    "Thomas",
    "Karim",
    "Mehdi",
    "Yanis",
    "Antoine",
    "Nicolas",
    "Sophie",
    "Élodie",
)
LAST_NAMES = (
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "Benali",
    "Nguyen",
    "Fontaine",
    "Rousseau",
    "Faure",
)

# intent: (weight, escalation probability, ticket priorities and their weights, questions)
INTENTS: dict[str, tuple[float, float, tuple[tuple[str, ...], tuple[int, ...]], tuple[str, ...]]] = {
    "facturation": (
        28,
        0.10,
        (("LOW", "MEDIUM", "HIGH"), (5, 4, 1)),
        (
            "Où puis-je télécharger ma facture du mois dernier ?",
            "Pourquoi ma facture est plus élevée que d'habitude ?",
            "Je veux contester une facture, comment faire ?",
            "Comment changer mon moyen de paiement ?",
            "On m'a prélevé deux fois ce mois-ci, c'est normal ?",
        ),
    ),
    "technique": (
        24,
        0.14,
        (("MEDIUM", "HIGH", "URGENT"), (5, 4, 1)),
        (
            "Je n'ai plus de réseau depuis ce matin",
            "Quels sont les paramètres APN pour Free ?",
            "Mes MMS ne partent pas",
            "La 4G est très lente chez moi le soir",
            "Comment activer la 5G sur mon téléphone ?",
        ),
    ),
    "forfait": (
        18,
        0.05,
        (("LOW", "MEDIUM"), (3, 1)),
        (
            "Comment passer au Forfait Free 5G ?",
            "Combien de data me reste-t-il ce mois-ci ?",
            "Est-ce que je peux utiliser mon forfait en Espagne ?",
            "Comment ajouter une option appels illimités vers l'Europe ?",
        ),
    ),
    "résiliation": (
        7,
        0.85,
        (("MEDIUM", "LOW"), (3, 1)),
        (
            "Je veux résilier mon forfait",
            "Comment obtenir mon code RIO pour changer d'opérateur ?",
            "Y a-t-il des frais si je résilie ?",
        ),
    ),
    "réclamation": (
        8,
        0.55,
        (("HIGH", "MEDIUM", "URGENT"), (4, 4, 1)),
        (
            "C'est inadmissible, trois jours sans réseau et personne ne répond !",
            "Je veux parler à un conseiller, mon problème n'est toujours pas réglé",
            "On m'a facturé une option que je n'ai jamais demandée, je suis furieux",
        ),
    ),
    "activation": (
        6,
        0.08,
        (("MEDIUM", "LOW"), (1, 1)),
        (
            "Ma nouvelle carte SIM ne fonctionne pas",
            "Combien de temps pour activer ma ligne ?",
        ),
    ),
    "assistance": (
        5,
        0.20,
        (("LOW", "MEDIUM"), (1, 1)),
        (
            "Comment joindre le service client ?",
            "Je voudrais être rappelé, mon numéro est le 06 00 00 12 34",
        ),
    ),
    "général": (
        4,
        0.05,
        (("LOW",), (1,)),
        (
            "Bonjour",
            "Merci pour votre aide",
        ),
    ),
}
ANSWERS = {
    "facturation": "Vos factures sont dans l'Espace Abonné, menu « Mes factures », au format PDF (12 mois).",
    "technique": "Désactivez le mode avion, redémarrez le téléphone et vérifiez la carte SIM.",
    "forfait": "Rendez-vous dans l'Espace Abonné > Mon forfait > Changer de forfait ; c'est immédiat.",
    "résiliation": "Vous pouvez résilier depuis l'Espace Abonné > Mon compte > Résilier mon forfait, sans frais.",
    "réclamation": "Je suis désolé pour la gêne occasionnée. Je transmets votre demande à un conseiller.",
    "activation": "L'activation de la ligne prend en général quelques heures après réception de la SIM.",
    "assistance": "Vous pouvez contacter l'assistance depuis https://mobile.free.fr/assistance/contact.html.",
    "général": "Bonjour ! Posez-moi votre question sur votre forfait, vos factures ou le réseau.",
}
NOTICE = "📨 Votre demande a été transmise à un conseiller ; la réponse apparaîtra dans cette conversation."
AGENT_REPLY = "Bonjour, je suis votre conseiller. J'ai bien pris en charge votre demande et je reviens vers vous."
COMPLAINTS = (
    "Toujours pas de réseau depuis hier soir, merci @FreeMobile 😡 #FreeMobile",
    "Facture doublée ce mois-ci sans explication #Free #SAVFree",
    "Ça fait 2 jours que la 4G ne marche plus à Lyon #FreeMobile",
    "Impossible de joindre le SAV, c'est une blague ? #SAVFree",
)
NEUTRAL_POSTS = (
    "Passé au Forfait Free 5G, le débit est top #FreeMobile",
    "Quelqu'un sait comment activer la VoWiFi ? #Free",
    "Merci au SAV pour la réponse rapide #SAVFree",
)
# Hour-of-day weights (UTC): quiet nights, a morning and an evening peak.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 7, 10, 12, 12, 11, 9, 9, 10, 10, 10, 11, 12, 11, 9, 7, 4, 2)


@dataclass
class DemoConfig:
    """What to generate; ``now`` is the end of the history (defaults to the current time)."""

    days: int = 90
    conversations: int = 5_000
    seed: int = 42
    now: datetime | None = None
    posts_per_day: int = field(default=0, metadata={"help": "0: about 3 % of the daily conversations"})


def _max_id(conn, table) -> int:
    return conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()


def is_empty(db: Database) -> bool:
    """True when none of the history tables has a row."""
    with db.engine.connect() as conn:
        return all(
            conn.execute(select(literal(1)).select_from(model.__table__).limit(1)).first() is None
            for model in (Customer, Conversation, Message, Ticket, MastodonPost)
        )


def _same_database(a: str, b: str) -> bool:
    """Compare two URLs, resolving SQLite file paths."""
    ua, ub = make_url(a), make_url(b)
    if ua.get_backend_name() == ub.get_backend_name() == "sqlite" and ua.database and ub.database:
        return Path(ua.database).expanduser().resolve() == Path(ub.database).expanduser().resolve()
    return ua.render_as_string(hide_password=False) == ub.render_as_string(hide_password=False)


class DemoGenerator:
    """Generates rows with one seeded RNG and inserts them in bulk (Core executemany)."""

    def __init__(self, db: Database, config: DemoConfig) -> None:
        self.db, self.config = db, config
        self.rng = random.Random(config.seed)
        self.now = config.now or utcnow()
        self.start = self.now - timedelta(days=config.days)
        self.counts: dict[str, int] = {}
        names = list(INTENTS)
        self._intents = (names, [INTENTS[n][0] for n in names])

    def run(self) -> dict[str, int]:
        """Generate everything; return the number of rows inserted per table."""
        customers = self._customers()
        # Chronological, as in production: ids grow with time, so time-range scans read the table in order.
        starts = sorted(self._when() for _ in range(self.config.conversations))
        for i in range(0, len(starts), BATCH):
            self._batch(starts[i : i + BATCH], customers)
        self._posts()
        return self.counts

    def _insert(self, conn, model, rows: list[dict]) -> None:
        if rows:
            conn.execute(insert(model.__table__), rows)
            self.counts[model.__tablename__] = self.counts.get(model.__tablename__, 0) + len(rows)

    def _customers(self) -> list[int]:
        """Ids of the customer pool, creating the test numbers not in the DB yet."""
        wanted = min(MAX_CUSTOMERS, max(10, self.config.conversations // 4))
        phones = [f"{PHONE_PREFIX}{i:04d}" for i in range(wanted)]
        table = Customer.__table__
        with self.db.engine.begin() as conn:
            known = dict(conn.execute(select(table.c.phone, table.c.id).where(table.c.phone.in_(phones))).all())
            next_id = _max_id(conn, table) + 1
            rows = []
            for phone in phones:
                if phone in known:
                    continue
                first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
                email = f"{first.lower()}.{last.lower()}{phone[-4:]}@example.org"
                rows.append(
                    {
                        "id": next_id,
                        "full_name": f"{first} {last}",
                        "phone": phone,
                        "email": email,
                        "created_at": self.start - timedelta(days=self.rng.randint(1, 700)),
                    }
                )
                known[phone] = next_id
                next_id += 1
            self._insert(conn, Customer, rows)
        return [known[p] for p in phones]

    def _when(self) -> datetime:
        """A conversation start: a random day of the history, hour drawn from HOUR_WEIGHTS."""
        first_day = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        while True:
            day = first_day + timedelta(days=self.rng.randrange(self.config.days + 1))
            hour = self.rng.choices(range(24), HOUR_WEIGHTS)[0]
            moment = day.replace(hour=hour) + timedelta(seconds=self.rng.randrange(3600))
            if self.start <= moment < self.now - timedelta(minutes=10):
                return moment

    def _latency(self) -> float:
        return round(min(self.rng.lognormvariate(6.8, 0.45), 12_000.0), 1)  # median ~900 ms

    def _batch(self, starts: list[datetime], customers: list[int]) -> None:
        rows: dict[type, list[dict]] = {m: [] for m in (Conversation, Message, Feedback, Ticket, TicketEvent)}
        with self.db.engine.begin() as conn:
            ids = {m: _max_id(conn, m.__table__) + 1 for m in (Message, Feedback, Ticket, TicketEvent)}
            for start in starts:
                self._conversation(rows, ids, self.rng.choice(customers), start)
            for model in (Conversation, Message, Feedback, Ticket, TicketEvent):
                for chunk in _chunks(rows[model], 20_000):
                    self._insert(conn, model, chunk)

    def _conversation(self, rows: dict[type, list[dict]], ids: dict[type, int], customer_id: int, t: datetime) -> None:
        rng = self.rng
        intent = rng.choices(*self._intents)[0]
        _, p_escalate, (priorities, weights), questions = INTENTS[intent]
        escalated = rng.random() < p_escalate
        conv_id = f"{rng.getrandbits(128):032x}"
        created = t
        turns = rng.choices((1, 2, 3), (55, 30, 15))[0]
        messages = rows[Message]
        for turn in range(turns):
            t += timedelta(seconds=rng.randint(5, 120))
            messages.append(self._message(ids, conv_id, "user", rng.choice(questions), None, t))
            latency = self._latency()
            t += timedelta(milliseconds=latency)
            last = turn == turns - 1
            meta = {
                "intent": intent,
                "confidence": round(rng.uniform(0.3, 0.6) if escalated and last else rng.uniform(0.55, 0.97), 3),
                "needs_escalation": escalated and last,
                "latency_ms": latency,
                "mode_used": "extractive",
                "sources": [
                    {
                        "id": f"{intent[:4]}-{rng.randint(1, 30):02d}",
                        "title": ANSWERS[intent][:40],
                        "score": round(rng.uniform(0.4, 0.95), 3),
                    }
                ],
            }
            msg_id = ids[Message]
            messages.append(self._message(ids, conv_id, "assistant", ANSWERS[intent], meta, t))
            if rng.random() < 0.18:
                rating = -1 if rng.random() < (0.6 if escalated else 0.12) else 1
                rows[Feedback].append(
                    {
                        "id": ids[Feedback],
                        "message_id": msg_id,
                        "conversation_id": conv_id,
                        "rating": rating,
                        "comment": None,
                        "created_at": t + timedelta(seconds=rng.randint(3, 60)),
                    }
                )
                ids[Feedback] += 1
        status = "bot"
        if escalated:
            messages.append(self._message(ids, conv_id, "system", NOTICE, None, t + timedelta(seconds=1)))
            status = self._ticket(rows, ids, conv_id, customer_id, intent, rng.choices(priorities, weights)[0], t)
        rows[Conversation].append(
            {
                "id": conv_id,
                "customer_id": customer_id,
                "channel": rng.choices(("web", "mastodon", "api"), (85, 10, 5))[0],
                "status": status,
                "context": None,
                "created_at": created,
                "updated_at": t,
            }
        )

    def _message(self, ids, conv_id: str, role: str, content: str, meta: dict | None, t: datetime) -> dict:
        row = {
            "id": ids[Message],
            "conversation_id": conv_id,
            "role": role,
            "content": content,
            "meta": meta,
            "created_at": t,
        }
        ids[Message] += 1
        return row

    def _ticket(self, rows, ids, conv_id: str, customer_id: int, intent: str, priority: str, t: datetime) -> str:
        """Add the escalation ticket (and its events, an agent reply); return the conversation status."""
        rng = self.rng
        sla = timedelta(hours=SLA_HOURS[Priority(priority)])
        delay = sla * rng.lognormvariate(-0.9, 0.7)  # median ~40 % of the SLA, ~10 % late
        resolved_at = t + delay
        ticket_id = ids[Ticket]
        ids[Ticket] += 1
        row = {
            "id": ticket_id,
            "conversation_id": conv_id,
            "customer_id": customer_id,
            "category": intent
            if intent in ("facturation", "technique", "forfait", "résiliation", "réclamation")
            else "général",
            "priority": priority,
            "status": "OPEN",
            "assignee": None,
            "summary": f"Escalade — intention : {intent}.",
            "resolution_notes": None,
            "csat": None,
            "created_at": t,
            "updated_at": t,
            "resolved_at": None,
            "sla_due_at": t + sla,
        }
        events = [("created", "bot", f"Ticket créé ({row['category']}, priorité {priority}).", t)]
        status = "escalated"
        if resolved_at < self.now:
            row.update(
                status=rng.choices(("RESOLVED", "CLOSED"), (6, 4))[0],
                resolved_at=resolved_at,
                updated_at=resolved_at,
                assignee=f"agent{rng.randint(1, 12)}",
                resolution_notes="Problème résolu avec le client.",
            )
            if rng.random() < 0.65:
                late = resolved_at > t + sla
                row["csat"] = rng.choices((1, 2, 3, 4, 5), (10, 10, 15, 35, 30) if late else (2, 3, 8, 37, 50))[0]
            rows[Message].append(self._message(ids, conv_id, "agent", AGENT_REPLY, None, t + delay / 2))
            events.append(("status", row["assignee"], f"OPEN → {row['status']}", resolved_at))
            status = "closed"
        elif rng.random() < 0.5 and t + delay / 2 < self.now:
            row.update(status="IN_PROGRESS", assignee=f"agent{rng.randint(1, 12)}")
            status = "agent"
        rows[Ticket].append(row)
        for kind, actor, body, when in events:
            rows[TicketEvent].append(
                {
                    "id": ids[TicketEvent],
                    "ticket_id": ticket_id,
                    "kind": kind,
                    "actor": actor,
                    "body": body,
                    "created_at": when,
                }
            )
            ids[TicketEvent] += 1
        return status

    def _posts(self) -> None:
        """Mastodon posts about the operator, about 60 % of them complaints."""
        rng = self.rng
        per_day = self.config.posts_per_day or max(1, self.config.conversations * 3 // (100 * self.config.days))
        rows = []
        for t in sorted(self._when() for _ in range(per_day * self.config.days)):
            complaint = rng.random() < 0.6
            status_id = f"{rng.getrandbits(60)}"
            account = f"demo_user{rng.randint(1, 5000)}@mastodon.example"
            rows.append(
                {
                    "status_id": status_id,
                    "account": account,
                    "url": f"https://mastodon.example/@{account.split('@')[0]}/{status_id}",
                    "content": rng.choice(COMPLAINTS if complaint else NEUTRAL_POSTS),
                    "created_at": t,
                    "fetched_at": t + timedelta(seconds=rng.randint(2, 90)),
                    "is_complaint": complaint,
                    "complaint_score": round(rng.uniform(0.6, 0.98) if complaint else rng.uniform(0, 0.4), 3),
                    "urgency": rng.choice(("LOW", "MEDIUM", "HIGH")) if complaint else None,
                    "reason": "mots-clés de réclamation" if complaint else "",
                    "reply_status": "none",
                    "reply_text": None,
                    "reply_status_id": None,
                    "ticket_id": None,
                }
            )
        with self.db.engine.begin() as conn:
            self._insert(conn, MastodonPost, rows)


def _chunks(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def generate(db: Database, config: DemoConfig) -> dict[str, int]:
    """Generate synthetic history into an already migrated database; return row counts."""
    return DemoGenerator(db, config).run()


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m tickets.demo`."""
    parser = argparse.ArgumentParser(prog="python -m tickets.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="database URL to fill (NOT the app's database)")
    parser.add_argument("--days", type=int, default=90, help="days of history ending now")
    parser.add_argument("--conversations", type=int, default=5_000, help="number of conversations")
    parser.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    parser.add_argument("--append", action="store_true", help="allow adding to a database that has data")
    parser.add_argument(
        "--i-know-this-is-the-app-db",
        dest="app_db_ok",
        action="store_true",
        help="allow writing into the database the app is configured with",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = make_parser().parse_args(argv)
    if args.days < 1 or args.conversations < 0:
        print("error: --days must be >= 1 and --conversations >= 0", file=sys.stderr)
        return 2
    from settings import Settings, get_settings

    app_urls = (get_settings().database_url, Settings.model_fields["database_url"].default)
    if any(_same_database(args.db, url) for url in app_urls) and not args.app_db_ok:
        print(
            "error: refusing to write demo data into the app's database; pass another --db "
            "(or --i-know-this-is-the-app-db)",
            file=sys.stderr,
        )
        return 2
    db = Database(args.db)
    try:
        db.migrate()
        if not args.append and not is_empty(db):
            print("error: the database already holds data; use --append to add to it", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        counts = generate(db, DemoConfig(days=args.days, conversations=args.conversations, seed=args.seed))
        summary = ", ".join(f"{table}={n}" for table, n in counts.items())
        print(f"demo data written to {db.url} in {time.perf_counter() - t0:.1f} s: {summary}")
    finally:
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
