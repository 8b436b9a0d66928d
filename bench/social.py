"""Social monitor benchmark against mastodon-mock on loopback.

    python -m bench.social [--posts 200] [--restart-posts 20]

Prints one JSON object: time from a post to its stored decision (p50/p95/max, ms) over
``--posts`` live posts, then missed and duplicated posts/replies across a server restart
(posts made before, and right after, the restart). Both counts must be 0.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.social`."""
    parser = argparse.ArgumentParser(prog="python -m bench.social")
    parser.add_argument("--posts", type=int, default=200, help="live posts timed one by one")
    parser.add_argument("--restart-posts", type=int, default=20, help="posts before and after the server restart")
    return parser


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return False


def main(args: argparse.Namespace) -> dict:
    """Run the benchmark and return its JSON-able result."""
    from bench.mastodon_peer import SUPPORT, MastodonPeer
    from social.config import MastodonSettings
    from social.monitor import SocialMonitor
    from storage import Database

    tmp = Path(tempfile.mkdtemp(prefix="bench-social-"))
    db = Database(f"sqlite:///{tmp / 'app.db'}")
    db.migrate()
    peer = MastodonPeer(tmp / "mastodon.db").start()
    settings = MastodonSettings(
        instance_url=peer.base_url,
        access_token=f"{SUPPORT}_token",
        reply_mode="auto",
        backoff_initial=0.1,
        backoff_max=0.5,
        stream_timeout=5,
        request_timeout=5,
    )
    monitor = SocialMonitor(settings, db, public_url="http://chat.test")
    posts = monitor.service.posts
    monitor.start()
    _wait(lambda: monitor.status().connected)
    alice = peer.client("alice")
    texts = [
        "Plus de réseau depuis ce matin, inadmissible !! #FreeMobile {i}",
        "Merci pour la 5G, top #FreeMobile {i}",
        "Facturé deux fois, remboursez-moi 😡 #SAVFree {i}",
    ]
    latencies = []
    for i in range(args.posts):
        status = alice.status_post(texts[i % 3].format(i=i))
        start = time.perf_counter()
        if _wait(lambda s=status: posts.by_status_id(str(s["id"])) is not None):
            latencies.append((time.perf_counter() - start) * 1000)

    before = [alice.status_post(texts[i % 3].format(i=f"avant {i}")) for i in range(args.restart_posts)]
    _wait(lambda: all(posts.by_status_id(str(s["id"])) for s in before))
    peer.stop()
    _wait(lambda: not monitor.status().connected)
    peer.start()
    after = [alice.status_post(texts[i % 3].format(i=f"après {i}")) for i in range(args.restart_posts)]
    restart = before + after
    _wait(lambda: all(posts.by_status_id(str(s["id"])) for s in restart), timeout=60)
    _wait(lambda: not posts.with_status(("queued", "sending")), timeout=30)
    monitor.stop()

    missed = sum(posts.by_status_id(str(s["id"])) is None for s in restart)
    duplicated_replies = 0
    missing_replies = 0
    for status in restart:
        post = posts.by_status_id(str(status["id"]))
        replies = [d for d in alice.status_context(status["id"])["descendants"] if d["account"]["acct"] == SUPPORT]
        if post is not None and post.is_complaint:
            duplicated_replies += max(0, len(replies) - 1)
            missing_replies += len(replies) == 0
    peer.stop()
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) if latencies else None

    return {
        "posts": args.posts,
        "decided": len(latencies),
        "decision_ms": {"p50": pct(0.50), "p95": pct(0.95), "max": round(max(latencies), 1) if latencies else None},
        "restart": {
            "posts": len(restart),
            "missed_posts": missed,
            "duplicated_posts": len(restart)
            - missed
            - len({posts.by_status_id(str(s["id"])).id for s in restart if posts.by_status_id(str(s["id"]))}),
            "duplicated_replies": duplicated_replies,
            "missing_replies": missing_replies,
            "reconnects": monitor.status().reconnects,
        },
    }


if __name__ == "__main__":
    print(json.dumps(main(make_parser().parse_args()), ensure_ascii=False))
