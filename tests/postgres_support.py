"""A PostgreSQL for the tests: the server named by ``IVR_TEST_POSTGRES`` (a
DSN) when set, else a throwaway cluster started from Debian's binaries
(``/usr/lib/postgresql/*/bin``) in a temporary folder, listening on a unix
socket there and on 127.0.0.1 at a free port, and stopped at the end.

PostgreSQL refuses to run as root, so as root the cluster belongs to an
unprivileged system user (``ivrtest``, created when missing).  Each test
gets a schema of its own (:func:`fresh_schema`), dropped after it: a store
migrates it like a new database, in a few milliseconds.

Without a server and without the binaries, the tests that need one skip
and say so (``.ci/run`` installs the ``postgresql`` package).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

#: The environment variable naming an existing server (a libpq DSN or URL).
DSN_VARIABLE = "IVR_TEST_POSTGRES"

#: The unprivileged user a cluster started as root runs as.
CLUSTER_USER = "ivrtest"

#: Seconds a cluster may take to start or stop.
START_TIMEOUT = 60.0


class PostgresUnavailable(Exception):
    """No server is reachable and none can be started: the reason."""


def binaries() -> Path | None:
    """The folder of the newest installed PostgreSQL's initdb and pg_ctl."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_user() -> tuple[str, int | None, int | None]:
    """Who runs the cluster: this user, or as root the unprivileged one."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name, None, None
    try:
        entry = pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        CLUSTER_USER], check=True, capture_output=True, timeout=30)
        entry = pwd.getpwnam(CLUSTER_USER)
    return CLUSTER_USER, entry.pw_uid, entry.pw_gid


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary folder, for one test session."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.user, self.uid, self.gid = _as_user()
        self.folder = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()

    @property
    def dsn(self) -> str:
        """The cluster as a URL (what ``ivr-serve --db`` takes)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        if self.uid is not None:
            os.chown(self.folder, self.uid, self.gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user,
                  "--no-sync", "-E", "UTF8", "--locale=C")
        self.start_again()

    def start_again(self) -> None:
        """Start the cluster (made by :meth:`start`) on its port, and wait
        until it answers."""
        # fsync off: a test cluster lives for one session, and fsync would
        # make every commit wait on the disk the whole machine shares.
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"),
                  "-o", options, "-w", "-t", str(int(START_TIMEOUT)), "start")
        self._wait_ready()

    def stop_fast(self) -> None:
        """Stop the cluster as an operator does (``pg_ctl stop -m fast``):
        the server closes every connection and shuts down cleanly; the
        folder stays, for :meth:`start_again`."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w",
                  "-t", str(int(START_TIMEOUT)), "stop")

    def restart(self) -> None:
        """Restart the cluster as an operator does (``pg_ctl restart -m
        fast``), and wait until it answers again on the same port."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-m", "fast",
                  "-w", "-t", str(int(START_TIMEOUT)), "restart")
        self._wait_ready()

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():  # else it never started
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w",
                          "-t", str(int(START_TIMEOUT)), "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _run(self, program: str, *args: str) -> None:
        def demote():  # in the child, before exec: PostgreSQL refuses root
            if self.uid is not None:
                os.setgid(self.gid)
                os.setuid(self.uid)
        result = subprocess.run([str(self.bin_dir / program), *args], capture_output=True,
                                text=True, timeout=START_TIMEOUT + 30, preexec_fn=demote,
                                cwd=self.folder)
        if result.returncode:
            raise PostgresUnavailable(f"{program} failed: {result.stderr.strip() or result.stdout}")


@contextmanager
def postgres_server() -> Iterator[str]:
    """The DSN of a PostgreSQL for the session: ``$IVR_TEST_POSTGRES``, or a
    throwaway cluster, stopped on exit.  Raises :class:`PostgresUnavailable`
    with the reason when neither can be had."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg is not installed (pip install -e '.[test]')") from None
    configured = os.environ.get(DSN_VARIABLE, "").strip()
    if configured:
        yield configured
        return
    bin_dir = binaries()
    if bin_dir is None:
        raise PostgresUnavailable(f"no PostgreSQL server: set {DSN_VARIABLE} to a DSN, or install "
                                  "Debian's postgresql package (apt-get install postgresql)")
    cluster = ThrowawayCluster(bin_dir)
    try:
        cluster.start()
    except (OSError, subprocess.SubprocessError) as error:
        cluster.stop()
        raise PostgresUnavailable(f"could not start a throwaway PostgreSQL: {error}") from None
    except BaseException:
        cluster.stop()
        raise
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


@contextmanager
def fresh_schema(server_dsn: str) -> Iterator[str]:
    """A DSN whose tables land in a new, empty schema, dropped on exit."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(server_dsn, schema) if "://" in server_dsn else make_conninfo(
            server_dsn, options=f"-csearch_path={schema}")
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def schema_url(dsn: str, schema: str) -> str:
    """``dsn`` (a URL) working in ``schema``."""
    from urllib.parse import quote

    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}options={quote(f'-csearch_path={schema}')}"


def main() -> None:
    """Start a throwaway cluster, print its URL, and stop it on Ctrl-C:
    ``python tests/postgres_support.py`` to try ``ivr-serve --db`` locally."""
    import signal

    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    with postgres_server() as dsn:
        print(dsn, flush=True)
        signal.sigwait(stops)


if __name__ == "__main__":
    main()
