"""The app's service objects, built once from settings and passed explicitly to the UI tabs."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the UI callbacks (and the API) call into; no Gradio here."""

    settings: Settings
    db: object
    engine: object
    tickets: object
    chat: object
    staff: object
    analytics: object = None
    social: object = None
    social_monitor: object = None  # SocialMonitor when Mastodon is configured; runs under a lease (start_background)
    training: object = None  # training.runner.TrainingRunner: fine-tuning runs as subprocesses
    chat_models: object = None  # rag.llm.selection.ChatModelService: promoted chat model, rollback
    evaluation: object = None  # training.eval_runner.EvaluationRunner: comparisons run as subprocesses
    limits: object = None  # guard.RateLimits: the one limiter of the API and the Gradio events (from settings)
    cluster: object = None  # cluster.Cluster: leases and change notices between replicas (in-process without Redis)
    kb: object = None  # rag.kb.KnowledgeBase: the KB in the database (seeded from datasets/raw on first start)
    publisher: object = None  # rag.publish.Publisher: gated publication and rollback of the KB
    ready: threading.Event = field(default_factory=threading.Event)
    startup_error: str | None = None

    def __post_init__(self) -> None:
        if self.limits is None:
            from guard import RateLimits

            redis_url = self.settings.redis_url.get_secret_value() if self.settings.redis_url else None
            self.limits = RateLimits.from_settings(self.settings.api, redis_url=redis_url)
        if self.cluster is None:
            from cluster import build_cluster

            self.cluster = build_cluster(self.settings, self.db)
        self._monitor_lease = None
        self._wire_cluster()

    def _wire_cluster(self) -> None:
        """What other replicas' changes do here, what ours tell them, and the social monitor's lease."""
        cluster = self.cluster
        if self.chat_models is not None:
            self.chat_models.on_change = lambda: cluster.changed("chat_model")
            cluster.bus.subscribe("chat_model", self.chat_models.apply)
        cluster.bus.subscribe("kb_index", self.reload_index)
        if self.publisher is not None:
            self.publisher.on_change = self.index_rebuilt  # a publication or rollback: serve it, tell the others
        monitor = self.social_monitor
        if monitor is not None:
            # Exactly one monitor among the replicas: it runs only while this replica holds the lease.
            from social.monitor import MONITOR_LEASE

            self._monitor_lease = cluster.keeper(
                MONITOR_LEASE, on_acquire=lambda _lease: monitor.start(), on_lose=monitor.stop
            )
            if cluster.shared and self.social is not None:
                self.social.guard = self._monitor_lease.guard  # no automatic reply once the lease is in doubt

    def reload_index(self) -> None:
        """Serve the KB index build now in service (after a rebuild here or on another replica)."""
        if self.kb is not None:
            self.kb.sync_index(self.engine.embedder)  # another replica published: build that version here too
        self.engine.reload()
        if self.ready.is_set():
            self.engine.warm_up()  # load it now rather than inside the next customer's answer

    def index_rebuilt(self) -> None:
        """A KB rebuild finished on this replica: serve it here, then tell the other replicas."""
        self.reload_index()
        self.cluster.changed("kb_index")

    def start_background(self) -> None:
        """Start what runs beside the web server: the change watcher and the social monitor (under its lease)."""
        self.cluster.start()

    def stop_background(self) -> None:
        """Stop them (the monitor's lease is released, so another replica takes over at once)."""
        self.cluster.stop()

    def close(self) -> None:
        """At shutdown: stop the background work and the answer worker processes."""
        self.stop_background()
        self.engine.close()

    def prepare(self, migrate: bool = True) -> None:
        """Apply migrations (unless already done), then load (or build) the index and the embedding model."""
        if migrate:
            self.db.migrate()
        started = time.perf_counter()
        try:
            if self.kb is not None:
                self.kb.sync_index(self.engine.embedder)  # seed the KB tables on first start, index the published KB
            settings = self.settings
            if not self.engine.start_processes(settings.log_level, settings.log_format):  # answers use every core
                self.engine.warm_up()  # else this process answers: load its index and model now
            log.info("Knowledge base ready in %.1f s", time.perf_counter() - started)
        except Exception as exc:  # surfaced in the UI status, the app keeps serving its pages
            log.exception("Knowledge base failed to load")
            self.startup_error = str(exc)
        finally:
            self.ready.set()
        rag = self.settings.rag
        if self.chat_models is not None:
            try:
                self.chat_models.apply()  # a promoted model (else the settings); loads in the background
                return
            except Exception:  # a broken promotion must not stop the app: the settings' model answers
                log.exception("Promoted chat model could not be applied; using the settings")
        self.engine.use_model(rag.answer_mode, rag.llm)

    def prepare_in_background(self) -> threading.Thread:
        """Run prepare() on a daemon thread so the web server starts at once."""
        self.db.migrate()
        thread = threading.Thread(target=self.prepare, args=(False,), name="warm-up", daemon=True)
        thread.start()
        return thread


def database_options(settings: Settings) -> dict[str, Any]:
    """Engine options of the app's database: a server's connection pool as large as the threads that use it at once.

    SQLAlchemy's default (5, and up to 10 more opened and closed on demand) made a PostgreSQL connection,
    with its authentication and a new server process, for about one message in thirty under load.
    """
    if settings.database_url.startswith("sqlite"):
        return {}
    return {"pool_size": settings.database_pool_size or settings.api.worker_threads + 4}


def build_services(settings: Settings) -> Services:
    """Create the services; cheap (models and index load later, in prepare())."""
    from cluster import build_cluster
    from cluster.runs import RunCoordinator
    from rag.answer import AnswerEngine
    from rag.chat import ChatService
    from rag.kb import KnowledgeBase
    from rag.llm.selection import ChatModelService
    from rag.publish import Publisher
    from social.monitor import SocialMonitor
    from social.service import SocialService
    from storage import AppStateRepository, Database
    from tickets import TicketService
    from tickets.analytics import AnalyticsService
    from tickets.users import StaffService
    from training.eval_runner import EvaluationRunner
    from training.runner import TrainingRunner

    db = Database(settings.database_url, **database_options(settings))
    engine = AnswerEngine(settings.rag)
    tickets = TicketService(db)
    chat = ChatService(db, engine, tickets, max_chars=settings.rag.max_message_chars)
    social = SocialService(settings.mastodon, db, tickets, public_url=settings.public_url)
    monitor = SocialMonitor(settings.mastodon, db, service=social) if settings.mastodon.enabled else None
    kb = KnowledgeBase(db, settings.rag)
    cluster = build_cluster(settings, db)
    state = AppStateRepository(db)
    timing = {"ttl": settings.cluster.lease_ttl_s, "renew_every": settings.cluster.lease_renew_s}
    runs = {kind: RunCoordinator(kind, cluster.leases, state, cluster.replica, **timing)
            for kind in ("training", "evaluation")}  # fmt: skip
    return Services(cluster=cluster, settings=settings, db=db, engine=engine, tickets=tickets, chat=chat, staff=StaffService(db, idle_minutes=settings.staff_idle_minutes),
                    analytics=AnalyticsService(db), social=social, social_monitor=monitor,
                    training=TrainingRunner(runs_dir=settings.runs_dir, coordinator=runs["training"]),
                    evaluation=EvaluationRunner(runs_dir=settings.runs_dir, coordinator=runs["evaluation"]),
                    chat_models=ChatModelService(AppStateRepository(db), engine), kb=kb,
                    publisher=Publisher(kb, engine.embedder))
