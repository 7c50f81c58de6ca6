"""A real Celery worker in a subprocess, for integration tests (fixtures in tests/conftest.py).

The worker shares the test's database (the test database itself: SQLite file or PostgreSQL
`test_<name>`) and its broker: the filesystem transport in a folder of the test's own, or the
Redis of CELERY_BROKER_URL. While the fixture is active, this process's Celery app publishes
to that same broker, so `task.delay()` / `delay_on_commit()` in the code under test reach it.
Tests that use it need committed rows: `django_db(transaction=True)` (the fixture asks for it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)
READY_TIMEOUT = 90  # seconds; a loaded 2-core CI machine can take a while to import Django


def database_url_for_test_database() -> str:
    """DATABASE_URL naming the database this test process uses right now (the test database)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        credentials = quote(db["USER"] or "", safe="")
        if db.get("PASSWORD"):
            credentials += ":" + quote(db["PASSWORD"], safe="")
        host = f"{credentials}@{db.get('HOST') or ''}" if credentials else db.get("HOST") or ""
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{host}{port}/{quote(db['NAME'], safe='')}"
    raise NotImplementedError(f"no worker DATABASE_URL for {db['ENGINE']}")


def filesystem_transport_options(data_dir: Path) -> dict:
    """The transport options settings.py derives from CELERY_BROKER_DATA_DIR."""
    for sub in ("queue", "processed", "control"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(data_dir / "queue"),
        "data_folder_out": str(data_dir / "queue"),
        "processed_folder": str(data_dir / "processed"),
        # The exchange table, shared with the worker (kombu's default is ./control of the cwd).
        "control_folder": str(data_dir / "control"),
        "store_processed": False,
    }


class CeleryWorkerProcess:
    """`celery -A itbclinic worker` as a child process: start(), kill(sig), stop(), its log and env.

    `start()` may be called again after `kill()` or `stop()` (a restart): the log is appended to.
    """

    def __init__(self, *, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.name = f"itb-test-{uuid.uuid4().hex[:8]}"
        self.process: subprocess.Popen | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(
        self,
        *,
        pool: str = "solo",
        concurrency: int = 1,
        include: tuple[str, ...] = (),
        extra_args: tuple[str, ...] = (),
    ) -> CeleryWorkerProcess:
        assert not self.running, "worker already running"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "itbclinic",
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            f"--hostname={self.name}@%h",
            # No broadcast chatter with other workers: faster start, nothing shared by accident.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *(["--include", ",".join(include)] if include else []),
            *extra_args,
        ]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() reaches prefork children too
            )
        self._wait_for(" ready.", offset=offset, timeout=READY_TIMEOUT)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        """Send `sig` to the worker's whole process group; for SIGKILL wait and return the exit code."""
        assert self.process is not None, "worker never started"
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.process.pid, sig)
        if sig == signal.SIGKILL:
            return self.process.wait(timeout=30)
        return None

    def stop(self, timeout: float = 20) -> None:
        """Warm shutdown (SIGTERM: finish the current task), then SIGKILL if it takes too long."""
        if not self.running:
            return
        self.kill(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
        # Prefork children may outlive a parent that was told to stop: leave nothing behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- observation -----------------------------------------------------------------------
    @property
    def log(self) -> str:
        return self._output().decode(errors="replace")

    def _output(self, offset: int = 0) -> bytes:
        if not self.log_path.exists():
            return b""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read()

    def wait_for_log(self, text: str, *, timeout: float = 30) -> None:
        """Wait until `text` appears in the worker's output (since it was first started)."""
        self._wait_for(text, offset=0, timeout=timeout)

    def _wait_for(self, text: str, *, offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text.encode() in self._output(offset):
                return
            if self.process is not None and self.process.poll() is not None and text == " ready.":
                break
            time.sleep(0.1)
        raise AssertionError(f"worker output has no {text!r} after {timeout}s:\n{self.log[-4000:]}")


def wait_until(predicate, *, timeout: float = 30, interval: float = 0.1) -> bool:
    """Poll `predicate` until it is truthy (True) or the timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class BrokerSwitch:
    """Points this process's Celery producer at the worker's broker, and back (undo()).

    Celery reads CELERY_BROKER_URL from the environment before its settings, and keeps
    connection pools made with the old options: both are handled here.
    """

    def __init__(self, app) -> None:
        self.app = app
        self._saved_env: dict[str, str | None] = {}
        self._saved_options = None

    def to(self, *, broker_url: str, transport_options: dict) -> None:
        for name in ("CELERY_BROKER_URL", "CELERY_BROKER_WRITE_URL", "CELERY_BROKER_READ_URL"):
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)
        os.environ["CELERY_BROKER_URL"] = broker_url
        if self._saved_options is None:
            self._saved_options = self.app.conf["CELERY_BROKER_TRANSPORT_OPTIONS"]
        # The namespaced key: the app reads its settings under the CELERY_ prefix first.
        self.app.conf["CELERY_BROKER_TRANSPORT_OPTIONS"] = transport_options
        self._drop_pools()

    def undo(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._saved_options is not None:
            self.app.conf["CELERY_BROKER_TRANSPORT_OPTIONS"] = self._saved_options
        self._drop_pools()

    def _drop_pools(self) -> None:
        # What Celery itself does after a fork: the next publish looks its pools up again, and
        # kombu keys them by URL and transport options. (Not closed: an identical configuration
        # gets the same pool back from kombu's registry.)
        self.app._pool = None
        amqp = self.app.__dict__.get("amqp")
        if amqp is not None:
            amqp._producer_pool = None


def make_worker(*, broker_url: str, work_dir: Path, switch: BrokerSwitch) -> CeleryWorkerProcess:
    """A worker (not started) on `broker_url`, with this process publishing to the same broker."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CELERY_BROKER_WRITE_URL", "CELERY_BROKER_READ_URL", "CELERY_BROKER_DATA_DIR"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="itbclinic.settings",
        DATABASE_URL=database_url_for_test_database(),
        CELERY_BROKER_URL=broker_url,
        PYTHONPATH=os.pathsep.join(filter(None, [str(BASE_DIR), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    if broker_url.startswith("filesystem://"):
        data_dir = work_dir / "broker"
        env["CELERY_BROKER_DATA_DIR"] = str(data_dir)
        options = filesystem_transport_options(data_dir)
    else:
        options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    switch.to(broker_url=broker_url, transport_options=options)
    if not broker_url.startswith("filesystem://"):
        # A shared broker may hold messages from an earlier run: the test starts from an empty queue.
        switch.app.control.purge()
    return CeleryWorkerProcess(env=env, log_path=work_dir / "worker.log")
