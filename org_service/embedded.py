"""Development default: a SecantusDB child process when no MONGODB_URL is configured.

SecantusDB speaks the MongoDB wire protocol on WiredTiger. It is GPL-2.0 and installed
only with the `embedded` extra; production images run against MongoDB and never import it.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)


# In EMBEDDED_DATA_DIR while an API runs the embedded server there: where it answers, for
# the operator CLI, which cannot start a second server on the same data.
URL_FILE = "embedded-db.url"


def publish_url(data_dir: Path, url: str) -> None:
    path = data_dir / URL_FILE
    partial = path.with_suffix(".partial")
    partial.write_text(url + "\n")
    partial.replace(path)  # whole or not at all: a reader never sees half a URL


def published_url(data_dir: Path) -> str | None:
    """The URL an API published (None: none runs, or it was killed before it could take
    the file away: then nothing answers there)."""
    try:
        return (data_dir / URL_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def withdraw_url(data_dir: Path, url: str) -> None:
    if published_url(data_dir) == url:
        (data_dir / URL_FILE).unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """For `preexec_fn`: on Linux the child is killed when its parent dies, even by SIGKILL,
    so a crashed parent never leaves a server holding a port (and, for the database, the
    data directory)."""
    # SIGKILL, not SIGTERM: SecantusDB's SIGTERM handler can deadlock (it sets a
    # threading.Event whose lock the interrupted main thread may hold), and such an orphan
    # holds the WiredTiger lock for good. Nothing acknowledged is lost: the embedded server
    # runs with --sync-on-commit, and WiredTiger recovers from its log on the next start.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


LOCK_FILE = "org_service.lock"


class DataDirectoryInUse(RuntimeError):
    """Another process runs an embedded SecantusDB on this data folder."""

    def __init__(self, storage_path: str) -> None:
        super().__init__(
            f"the data folder {storage_path} is in use by another org_service instance "
            "(its embedded SecantusDB): stop that one, or set EMBEDDED_DATA_DIR to another "
            "folder")


def lock_data_directory(storage_path: str) -> int:
    """Lock the folder for this process (an open file descriptor; closing it unlocks).

    Two SecantusDB servers on one folder fight over WiredTiger's own lock: the second
    prints a traceback per attempt until it gives up. An flock is released by the kernel
    when its holder dies, even by SIGKILL, so a crashed API never leaves the folder locked.
    """
    Path(storage_path).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(storage_path) / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirectoryInUse(storage_path) from None
    return fd


def _executable() -> str:
    beside_python = Path(sys.executable).with_name("secantusd-py")
    found = str(beside_python) if beside_python.exists() else shutil.which("secantusd-py")
    if not found:
        raise RuntimeError(
            "MONGODB_URL is not set and SecantusDB is not installed: "
            "install the 'embedded' extra (pip install -e '.[embedded]') or set MONGODB_URL"
        )
    return found


class EmbeddedMongo:
    """A SecantusDB server on a loopback port, owned by this process."""

    def __init__(self, storage_path: str, *, sync_on_commit: bool = True,
                 test_commands: bool = False, port: int | None = None,
                 cache_size: str | None = None,
                 oplog_retention_seconds: int | None = None) -> None:
        self.storage_path = storage_path
        # With ":memory:" every byte written lives in WiredTiger's cache (1 GB unless set),
        # the oplog's copy of it too; near the cap the engine stalls whole requests.
        self.cache_size = cache_size
        self.oplog_retention_seconds = oplog_retention_seconds
        self.port = port or free_port()
        self.sync_on_commit = sync_on_commit
        self.test_commands = test_commands
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 60.0) -> EmbeddedMongo:
        if self.storage_path != ":memory:" and self._lock is None:
            # Held until stop(), across kill() and a restart: the folder stays this
            # process's while its server is down.
            self._lock = lock_data_directory(self.storage_path)
        command = [_executable(), "--host", "127.0.0.1", "--port", str(self.port),
                   "--storage-path", self.storage_path, "--log-level", "WARNING"]
        if self.sync_on_commit:
            # Without it a killed SecantusDB loses its most recent acknowledged writes.
            command.append("--sync-on-commit")
        if self.test_commands:
            command.append("--enable-test-commands")
        if self.cache_size:
            command += ["--cache-size", self.cache_size]
        if self.oplog_retention_seconds is not None:
            command += ["--oplog-retention-seconds", str(self.oplog_retention_seconds)]
        deadline = time.monotonic() + timeout
        while True:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                            preexec_fn=die_with_parent)
            if self._wait_until_ready(deadline):
                return self
            # It exited: most often the previous server on this data directory (say, of an
            # API that crashed a moment ago) still holds the WiredTiger lock while it stops.
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"SecantusDB exited with code {self.process.returncode}")
            log.warning("SecantusDB exited with code %s; retrying", self.process.returncode)
            time.sleep(0.5)

    def _wait_until_ready(self, deadline: float) -> bool:
        """True once the server answers; False if it exited first."""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                client: MongoClient[dict[str, object]]
                with MongoClient(self.url, serverSelectionTimeoutMS=500) as client:
                    client.admin.command("ping")
                return True
            except PyMongoError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SecantusDB did not answer on port {self.port} in time")

    def kill(self) -> None:
        """Stop abruptly, as a crash would (tests of the outage path use this)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        try:
            self._stop_process()
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None

    def _stop_process(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
