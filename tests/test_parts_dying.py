"""Our own processes dying: beat without its broker, the worker losing Valkey, ``manage.py run`` supervising.

Real processes throughout: a Valkey of the test's own that is killed with
SIGKILL and started again on the same port, real Celery beat and worker, and
``manage.py run`` with its embedded Valkey, the simulator, gunicorn, worker and beat.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.valkey import OwnValkey
from tests.waiting import wait_for

CELERY = str(Path(sys.executable).with_name("celery"))


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[OwnValkey]:
    server = OwnValkey(tmp_path / "valkey")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def celery(role: str, args: list[str], redis_url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [CELERY, "-A", "dashboard", role, *args],
            cwd=settings.BASE_DIR,
            env={**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def test_beat_logs_one_line_per_broker_outage_not_one_per_tick(tmp_path: Path, own_valkey: OwnValkey) -> None:
    log = tmp_path / "beat.log"
    beat = celery(
        "beat",
        ["-s", str(tmp_path / "beat-schedule"), "--pidfile=", "--loglevel", "INFO"],
        own_valkey.url,
        log,
        # Beat's "Sending due task" lines, counted below, are logged at DEBUG only.
        BOARD_LOG_LEVEL="DEBUG",
    )
    sends = "Scheduler: Sending due task poll-tick"
    try:
        wait_for(lambda: log.read_text().count(sends) >= 2, timeout=120, what="beat sending ticks")
        own_valkey.kill()
        at_outage = log.read_text().count(sends)
        # Five ticks tried, and failed, while the broker is away.
        wait_for(
            lambda: log.read_text().count(sends) >= at_outage + 5, timeout=60, what="beat trying five ticks"
        )
        own_valkey.start()
        wait_for(
            lambda: "sends dashboard.polling.tasks.poll_tick to the broker again" in log.read_text(),
            timeout=60,
            what="beat sending again",
        )
    finally:
        stop(beat)
    text = log.read_text()
    cannot = [line for line in text.splitlines() if "beat cannot send" in line]
    assert len(cannot) == 1, text
    assert " WARNING " in cannot[0]
    assert "Traceback" not in text
    assert "Message Error" not in text


# --- manage.py run supervising its parts ---------------------------------------------------


def children_of(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``, with their command lines."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found[int(entry.name)] = argv
    return found


def child(run: subprocess.Popen[bytes], marker: str) -> int:
    def find() -> int | None:
        for pid, argv in children_of(run.pid).items():
            if marker in argv:
                return pid
        return None

    return wait_for(find, timeout=60, what=f"the {marker!r} process under manage.py run")


def test_make_run_restarts_a_killed_worker_and_valkey_and_the_board_is_fresh_again(tmp_path: Path) -> None:
    import signal
    import time

    import httpx

    from tests.webserver import free_port

    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MOGPLEX_", "REDIS_URL", "DATABASE_URL", "DJANGO_", "BOARD_", "CELERY"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "BOARD_VAR_DIR": str(tmp_path / "var"),
            "EMBEDDED_VALKEY_PORT": str(free_port()),
            "SIMULATOR_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = tmp_path / "run.log"
    manage = [sys.executable, "manage.py"]
    with log.open("wb") as sink:
        run = subprocess.Popen(
            [*manage, "run", "--port", str(port)],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def tail() -> str:
        return "\n".join(log.read_text(errors="replace").splitlines()[-40:])

    def board() -> dict[str, object] | None:
        assert run.poll() is None, f"manage.py run stopped:\n{tail()}"
        try:
            answer = httpx.get(f"{base}/api/board.json", params={"display": display}, timeout=5)
        except httpx.HTTPError:
            return None
        return answer.json() if answer.status_code == 200 else None  # type: ignore[no-any-return]

    def fresh_since(moment: float) -> bool:
        state = board()
        if state is None:
            return False
        poller = state["poller"]
        assert isinstance(poller, dict)
        return not poller["stale"] and (poller["heartbeat_at"] or 0) > moment

    try:
        wait_for(
            lambda: "Ctrl-C stops everything." in log.read_text(), timeout=120, what=f"the board\n{tail()}"
        )
        link = subprocess.run(
            [*manage, "kiosk_link", "lobby"],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        display = link.strip().split("/kiosk/")[1].split("/")[0]
        wait_for(lambda: fresh_since(0), timeout=120, what=f"a fresh board\n{tail()}")

        killed_at = time.time()
        os.kill(child(run, "-Q celery"), signal.SIGKILL)
        wait_for(
            lambda: (
                "board: the worker process stopped (killed by SIGKILL); starting it again in 1 s"
                in log.read_text()
            ),
            timeout=30,
            what=f"the restart line\n{tail()}",
        )
        wait_for(lambda: fresh_since(killed_at), timeout=120, what=f"fresh data after the worker\n{tail()}")

        killed_at = time.time()
        os.kill(child(run, "valkey"), signal.SIGKILL)
        wait_for(
            lambda: "board: the valkey process stopped (killed by SIGKILL)" in log.read_text(),
            timeout=30,
            what=f"the restart line\n{tail()}",
        )
        wait_for(lambda: fresh_since(killed_at), timeout=120, what=f"fresh data after Valkey\n{tail()}")
        assert run.poll() is None
        parts = children_of(run.pid)
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=60)
    text = log.read_text(errors="replace")
    assert "Unrecoverable error" not in text
    assert "stopping the rest" not in text
    assert len([line for line in text.splitlines() if line.startswith("board: the ")]) == 2, text
    assert len(parts) == 6, parts  # valkey, simulator, web, worker, notifier, beat
    for pid in parts:
        wait_for(
            lambda pid=pid: not Path(f"/proc/{pid}").exists() or _zombie(pid),
            timeout=30,
            what="parts stopped",
        )  # type: ignore[misc]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_part_that_keeps_dying_stops_the_board_with_a_sentence_naming_it(tmp_path: Path) -> None:
    import io

    from dashboard.management.supervision import PartKeepsDying, Supervisor

    out = io.StringIO()
    supervisor = Supervisor(out, backoff_seconds=(0.05,))
    supervisor.start("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start("worker", [sys.executable, "-c", "raise SystemExit(3)"])
    try:
        with pytest.raises(PartKeepsDying) as info:
            supervisor.watch()
        steady = supervisor.parts[0].process
        assert steady is not None and steady.poll() is None, "the others run until the board stops"
    finally:
        supervisor.stop_all()
    assert str(info.value) == (
        "The worker process stopped 5 times in 5 minutes (last: exit code 3); stopping the board. "
        "Its log lines above say why; fix that and start it again."
    )
    lines = out.getvalue().splitlines()
    assert lines == [
        f"board: the worker process stopped (exit code 3); starting it again in 0.05 s ({n} of 5 allowed in 5 minutes)."
        for n in range(1, 5)
    ]
    assert steady.poll() is not None
