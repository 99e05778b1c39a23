"""The supervised ExaBGP child process and its API channel.

Owned by `bgp.driver`, the only caller. `ExaBGP` writes the configuration into a runtime directory
(validated with `exabgp validate` first), runs ExaBGP with the environment the speaker needs (acks
on, JSON events, quiet logs, no named-pipe CLI) and restarts it with back-off whenever it exits,
exit code 0 included: ExaBGP exits 0 after five deaths of its API process.

ExaBGP's API process is `bgp.relay`, which connects back to a Unix socket served here; commands go
down that connection and acks and events come up it (`bgp.exabgp_channel`). Every command is
answered `done` or `error`, in order; `submit` keeps at most `window` commands unanswered, since
ExaBGP rescans its whole queue of pending commands on every loop. `events()` yields, in order:
`Ready` (the channel is up; `fresh` when ExaBGP itself (re)started and so holds no routes),
`SessionEvent` (a BGP session changed state) and `Lost` (the channel or the process went away;
commands fail with `ChannelDown` until the next `Ready`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import pwd
import random
import re
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from bgp.exabgp_channel import (
    Channel,
    ChannelDown,
    CommandFailed,
    CommandTimeout,
    Event,
    Lost,
    Ready,
    peer_ancestors,
)
from lbipam.k8s.logs import KVLog

_log = KVLog("lbipam.exabgp")

#: Environment that every ExaBGP run gets (variables override ExaBGP's env file).
ENVIRONMENT = {
    "exabgp_api_ack": "true",
    "exabgp_api_encoder": "json",
    "exabgp_api_cli": "false",  # no named pipes, no advice about them
    "exabgp_api_respawn": "true",
    "exabgp_reactor_speed": "0.1",  # 0.01 busy-spins an idle core; 1.0 adds latency
    "exabgp_daemon_daemonize": "false",
    "exabgp_tcp_bind": "",  # never listen: the speaker dials its peers
    "exabgp_log_short": "true",
    "exabgp_log_routes": "false",
    "exabgp_log_statistics": "false",
    "exabgp_log_packets": "false",
    "exabgp_log_message": "false",
    "exabgp_log_rib": "false",
    "exabgp_log_timers": "false",
    "exabgp_log_parser": "false",
    "exabgp_log_processes": "false",  # a line per route: about 12% of the bulk announce rate
}
RAN_LONG_ENOUGH = 60.0  # seconds: a run this long resets the back-off
LINE_LIMIT = 16 * 1024 * 1024  # `show neighbor json` with many peers is one long line


class ConfigInvalid(Exception):
    """`exabgp validate` refused a rendered configuration (a bug in `bgp.render`, or a value
    ExaBGP checks more strictly)."""


def redact(text: str, config: str) -> str:
    """`text` (ExaBGP's output) without the MD5 passwords of `config`, which it may quote: their
    base64 form is exactly the Secret's data."""
    for secret in re.findall(r'md5-password "([^"]*)"', config):
        if secret:
            text = text.replace(secret, "<redacted>")
    return re.sub(r'(md5-password\s+)"?[^";\s]*"?', r"\1<redacted>", text)


def _blocks(config: str) -> list[str]:
    """The top-level blocks of a rendered configuration (`process ...`, `neighbor ...`)."""
    return [part.strip() for part in re.split(r"\n(?=(?:process|neighbor) )", config) if part.strip()]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the speaker dies, so no orphaned ExaBGP keeps
    announcing (Linux prctl PR_SET_PDEATHSIG)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)


_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None


def _write_private(path: Path, text: str) -> None:
    """Write a file only we can read: the configuration holds the MD5 passwords."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(path, 0o600)  # in case it existed with other permissions


class ExaBGP:
    """One ExaBGP child, restarted whenever it exits, and the API channel to it."""

    def __init__(
        self,
        runtime_dir: Path,
        *,
        command: Sequence[str] | None = None,
        window: int = 10,
        ack_timeout: float = 60.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.runtime_dir = Path(runtime_dir).absolute()  # ExaBGP is handed paths inside it
        self.command = list(command) if command else [sys.executable, "-m", "exabgp"]
        self.window = window
        self.ack_timeout = ack_timeout
        self.backoff = backoff
        self.extra_env = dict(env or {})
        self.config_path = self.runtime_dir / "exabgp.conf"
        self.socket_path = self._socket_path()
        self.restarts = 0  # starts after the first
        self.connections = 0  # API channels opened (the relay is respawned by ExaBGP when it dies)
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._channel: Channel | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._server: asyncio.AbstractServer | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._fresh = False  # the next channel is the first of a new ExaBGP process
        self._up = asyncio.Event()  # set while a channel is ready
        self._restart_now = False
        self._stopping = asyncio.Event()
        self._valid: set[bytes] = set()  # digests of blocks `exabgp validate` passed
        self._installed = ""  # the configuration in use (its passwords are kept out of logs)

    def _socket_path(self) -> Path:
        path = self.runtime_dir / "api.sock"
        if len(os.fsencode(path)) < 100:  # sun_path holds 108 bytes
            return path
        return Path(tempfile.mkdtemp(prefix="lbipam-exabgp-")) / "api.sock"

    # ------------------------------------------------------------------ life cycle

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **ENVIRONMENT, **self.extra_env}
        if os.geteuid() == 0:
            # As root ExaBGP drops to `nobody` before it starts the relay; if nobody cannot run
            # this interpreter, ExaBGP idles forever without a word. Stay who we are.
            env["exabgp_daemon_user"] = pwd.getpwuid(os.geteuid()).pw_name
        return env

    async def validate(self, config: str) -> None:
        """Run `exabgp validate` on `config`; raise ConfigInvalid with its complaint. Parts that
        passed before are not checked again: each check starts a Python process (about a second
        of CPU), and a peer held down or backing off must leave ExaBGP at once. A configuration
        made only of blocks that passed (the process, each neighbor) is valid: they are
        independent, and `bgp.render` refuses two neighbors with one address itself."""
        parts = {hashlib.sha256(block.encode()).digest() for block in _blocks(config)}
        if parts <= self._valid:
            return
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        candidate = self.runtime_dir / "exabgp.conf.new"
        _write_private(candidate, config)
        proc = await asyncio.create_subprocess_exec(
            *self.command,
            "validate",
            str(candidate),
            env=self.environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
        if proc.returncode != 0:
            text = redact(output.decode(errors="replace"), config)
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            raise ConfigInvalid("exabgp validate: " + " | ".join(lines[-4:]))
        if len(self._valid) >= 4096:
            self._valid.clear()
        self._valid |= parts

    async def start(self, config: str) -> None:
        """Validate and write `config`, listen for the relay and start supervising ExaBGP."""
        await self.validate(config)
        self._install(config)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(
            self._on_relay, path=str(self.socket_path), limit=LINE_LIMIT
        )
        os.chmod(self.socket_path, 0o600)
        self._supervisor = asyncio.create_task(self._supervise(), name="exabgp-supervisor")

    def _install(self, config: str) -> None:
        candidate = self.runtime_dir / "exabgp.conf.new"
        if not candidate.exists() or candidate.read_text() != config:
            _write_private(candidate, config)
        candidate.replace(self.config_path)
        self._installed = config

    @property
    def running(self) -> bool:
        return self._supervisor is not None and not self._supervisor.done()

    @property
    def ready(self) -> bool:
        """The channel is up and synchronised: commands can be sent."""
        return self._channel is not None and self._channel.ready

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109  # a deadline, not a sleep
        """Wait up to `timeout` for the channel to be up; whether it is."""
        if self.running:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancel
                    await self._up.wait()
        return self.ready

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def reconfigure(self, config: str) -> None:
        """Use `config` from now on: `reload` when the channel is idle enough to send it (ExaBGP
        then keeps unchanged peers' sessions and every peer's routes), else a restart."""
        await self.validate(config)
        self._install(config)
        if self.ready:
            try:
                await self.send("reload", alone=True)
                return
            except CommandFailed as err:
                _log.warning("reload refused, restarting ExaBGP", error=str(err))
            except (ChannelDown, CommandTimeout):
                pass  # the supervisor restarts it with the new file anyway
        self.restart()

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the running ExaBGP; the supervisor starts a new one at once (no back-off). Between
        two runs this does nothing: the next run reads the newest configuration anyway."""
        if self.pid is not None:
            self._restart_now = True
            self._terminate(sig)

    def _terminate(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109  # a kill deadline
        """Stop ExaBGP (SIGTERM, then SIGKILL after `timeout`) and stop restarting it."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._terminate()
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
            except TimeoutError:
                self._terminate(signal.SIGKILL)
                await proc.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._drop_channel("ExaBGP stopped")
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self.socket_path.parent != self.runtime_dir:
            with contextlib.suppress(OSError):
                self.socket_path.parent.rmdir()

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            loop = asyncio.get_running_loop()
            started = loop.time()
            reason = await self._run_once()
            self._drop_channel(reason, exited=True)
            if self._stopping.is_set():
                return
            self.restarts += 1
            if self._restart_now:
                self._restart_now = False
                continue
            failures = 1 if loop.time() - started > RAN_LONG_ENOUGH else failures + 1
            # A first death is restarted at once (with graceful restart the routers are
            # waiting); a crash loop backs off, doubling up to the ceiling.
            low, high = self.backoff
            delay = 0.0 if failures == 1 else min(high, low * 2 ** (failures - 2)) * random.uniform(0.8, 1.2)
            _log.warning("ExaBGP exited, restarting", reason=reason, delay=round(delay, 2))
            await asyncio.sleep(delay)  # back-off between restarts, not synchronisation

    async def _run_once(self) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                str(self.config_path),
                env=self.environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the speaker must not kill it first
                preexec_fn=_die_with_parent,  # only prctl, no locks taken
            )
        except OSError as err:
            return f"cannot start ExaBGP: {err}"
        self._proc, self._fresh = proc, True
        _log.info("ExaBGP started", pid=proc.pid)
        tail: list[str] = []
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = redact(line.decode(errors="replace").rstrip(), self._installed)
            _log.debug("exabgp", line=text)
            tail = [*tail[-3:], text]
        code = await proc.wait()
        self._proc = None
        last = f": {tail[-1]}" if tail and code >= 0 else ""  # not for a signal
        return f"ExaBGP exited with code {code}{last}"

    # ------------------------------------------------------------------ channel

    async def _on_relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proc, ancestors = self._proc, peer_ancestors(writer)
        if proc is None or (ancestors is not None and proc.pid not in ancestors):
            # Only the relay our ExaBGP started may drive it (an old relay on its way out, or
            # anyone else who found the socket, is turned away). Ancestors, not the parent: an
            # `--exabgp` wrapper script may run ExaBGP as its child.
            writer.close()
            return
        self._drop_channel("API process reconnected")
        fresh, self._fresh = self._fresh, False
        channel = Channel(reader, writer, self._events, window=self.window, ack_timeout=self.ack_timeout)
        channel.on_wedged = self._wedged
        self._channel = channel
        try:
            neighbors, held = await channel.open()
        except (ChannelDown, CommandTimeout) as err:
            self._drop_channel(f"API channel failed to start: {err}")
            return
        self.connections += 1
        self._up.set()
        self._events.put_nowait(Ready(fresh=fresh, neighbors=neighbors))
        for event in held:
            self._events.put_nowait(event)
        await channel.closed()
        self._drop_channel(channel.close_reason or "API process gone", channel)

    def _wedged(self, reason: str) -> None:
        # SIGKILL: a wedged (or stopped) ExaBGP may never act on SIGTERM; with graceful restart
        # the routers keep its routes across the restart either way.
        _log.error("ExaBGP stopped answering, restarting it", reason=reason)
        self.restart(signal.SIGKILL)

    def _drop_channel(self, reason: str, only: Channel | None = None, *, exited: bool = False) -> None:
        channel = self._channel
        if channel is None or (only is not None and channel is not only):
            if exited:
                self._events.put_nowait(Lost(reason, exited=True))
            return
        self._channel = None
        self._up.clear()
        channel.close(reason)
        self._events.put_nowait(Lost(reason, exited=exited))

    async def submit(self, command: str, *, alone: bool = False) -> asyncio.Future[list[str]]:
        """Send `command` once the window has room; return the future of its answer (the output
        lines before `done`; CommandFailed on `error`; ChannelDown or CommandTimeout). With
        `alone`, wait until nothing else is unanswered and send nothing else until it is."""
        channel = self._channel
        if channel is None or not channel.ready:
            raise ChannelDown("the ExaBGP API channel is not up")
        return await channel.submit(command, alone=alone)

    async def send(self, command: str, *, alone: bool = False) -> list[str]:
        """`submit` and wait for the answer."""
        return await (await self.submit(command, alone=alone))

    async def events(self) -> AsyncIterator[Event]:
        """Ready, SessionEvent and Lost, in the order they happened. One consumer only."""
        while True:
            yield await self._events.get()
