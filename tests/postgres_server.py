"""A real PostgreSQL cluster for tests: ``initdb`` in a fresh temporary directory, served on a unix socket there
(no TCP), torn down with the directory. As root the server runs as the unprivileged ``postgres`` user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from mqtt_broker import free_port


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` (Debian's layout), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


class Postgres:
    """``start()`` a cluster, connect with :attr:`url`, ``stop()`` removes everything."""

    def __init__(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql, or make postgres-dep)")
        self._bin = binaries
        self.dir = Path(tempfile.mkdtemp(prefix="pg-"))  # short: a socket path must stay under 108 bytes
        self.port = free_port()  # names the socket file; nothing listens on TCP
        self._as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as = ["runuser", "-u", "postgres", "--"]
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        """A libpq URL for the ``postgres`` database over the unix socket."""
        return f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout[-1000:]}{done.stderr[-1000:]}")

    def start(self) -> None:
        """initdb (trust authentication on the socket only) and start the server, waiting until it accepts."""
        data = self.dir / "data"
        self._run(
            str(self._bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"
        )
        options = f"-k {self.dir} -c listen_addresses='' -p {self.port} -c fsync=on"
        self._run(str(self._bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the cluster."""
        try:
            self._run(str(self._bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
