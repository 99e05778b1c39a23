"""One connection from the relay (`bgp.relay`, ExaBGP's API process) and the ack protocol on it.

Used only by `bgp.exabgp`. Commands go down as lines; ExaBGP answers each with `done` or `error`, in
the order it received them, and writes JSON state events in between. A `Channel` matches answers to
commands (at most `window` unanswered), turns state events into `SessionEvent`s and the
NOTIFICATIONs routers send into `NotificationEvent`s, and gives up --
failing every unanswered command -- when the connection breaks, when the relay reports that it had
to drop lines, or when an answer is overdue (then `on_wedged` restarts ExaBGP).

A new connection may first receive answers to commands of an earlier one (ExaBGP answers by process
name, and a respawned relay inherits the name). So `open()` sends `show neighbor json` and ignores
every answer until that command's output has arrived; its answer is then the first that counts, and
its output tells which sessions are up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lbipam.k8s.logs import KVLog

_log = KVLog("lbipam.exabgp")
_UNSAFE = re.compile(r"[^\x20-\x7e]")


class ChannelDown(Exception):
    """The API channel is not up (ExaBGP starting, restarting, stopped), or broke before the answer."""


class CommandFailed(Exception):
    """ExaBGP answered `error`: it could not parse the command or had no matching neighbor."""


class CommandTimeout(Exception):
    """No answer within the deadline: ExaBGP is being restarted."""


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A BGP session changed state: `connected`, `up` or `down` (with ExaBGP's reason)."""

    peer: str  # the peer's address as ExaBGP writes it
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    """A router sent a NOTIFICATION (RFC 4271 4.5): error code, subcode and data (hex), as ExaBGP
    reported it just before the session's `down` event."""

    peer: str
    code: int
    subcode: int
    data: str = ""  # "0x4003..." as ExaBGP writes it, "" when empty


@dataclass(frozen=True, slots=True)
class Ready:
    """The channel is up. `fresh`: a new ExaBGP process, which holds no routes. `neighbors`: peer
    address -> ExaBGP's FSM state name (IDLE, ACTIVE, CONNECT, OPENSENT, OPENCONFIRM, ESTABLISHED)."""

    fresh: bool
    neighbors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Lost:
    """The channel went away (ExaBGP exited, the relay died, ...): commands fail until `Ready`."""

    reason: str
    exited: bool = False  # ExaBGP itself exited: its sessions are gone too


Event = SessionEvent | NotificationEvent | Ready | Lost


@dataclass(slots=True)
class _Pending:
    command: str
    future: asyncio.Future[list[str]]
    alone: bool
    output: list[str] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


def _consume(future: asyncio.Future[list[str]]) -> None:
    """Mark a failure as seen: nobody may be waiting for a command the driver gave up on."""
    if not future.cancelled():
        future.exception()


def peer_ancestors(writer: asyncio.StreamWriter, depth: int = 4) -> list[int] | None:
    """The parent, grandparent... pids of the process at the other end of a Unix socket (Linux:
    SO_PEERCRED and /proc), nearest first; None when that cannot be known."""
    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
        ancestors: list[int] = []
        for _ in range(depth):
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
            ancestors.append(pid)
            if pid <= 1:
                break
        return ancestors
    except (AttributeError, OSError, ValueError, IndexError):
        return None


class Channel:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        events: asyncio.Queue[Event],
        *,
        window: int,
        ack_timeout: float,
    ) -> None:
        self.reader, self.writer, self.events = reader, writer, events
        self.window, self.ack_timeout = window, ack_timeout
        self.pending: deque[_Pending] = deque()
        self.ready = False
        self.close_reason = ""
        self.on_wedged: Callable[[str], None] | None = None
        self._syncing = False
        self._held: list[SessionEvent] = []  # events after the snapshot, until `open` returns
        self._exclusive = False  # an `alone` command is unanswered
        self._alone_waiting = 0
        self._room = asyncio.Event()
        self._closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="exabgp-channel-reader")

    async def open(self) -> tuple[dict[str, str], list[SessionEvent]]:
        """Synchronise (see the module docstring). Return the sessions' FSM states and the state
        events that came after that snapshot was taken (those before are part of it)."""
        self._syncing = True
        try:
            lines = await self._write("show neighbor json", alone=True)
        finally:
            self._syncing = False
        held, self._held = self._held, []
        neighbors: dict[str, str] = {}
        for line in lines:
            if line.startswith("["):
                for item in json.loads(line):
                    neighbors[str(item["peer"]["address"])] = str(item.get("fsm", ""))
        self.ready = True
        self._room.set()
        return neighbors, held

    async def submit(self, command: str, *, alone: bool = False) -> asyncio.Future[list[str]]:
        if alone:
            self._alone_waiting += 1
        try:
            while not self._may_send(alone):
                self._room.clear()
                await self._room.wait()
        finally:
            if alone:
                self._alone_waiting -= 1
        return self._write(command, alone)

    def _may_send(self, alone: bool) -> bool:
        if not self.ready:
            raise ChannelDown(self.close_reason or "the ExaBGP API channel is not up")
        if self._exclusive:
            return False
        if alone:
            return not self.pending
        return len(self.pending) < self.window and not self._alone_waiting

    def _write(self, command: str, alone: bool) -> asyncio.Future[list[str]]:
        found = _UNSAFE.search(command)
        if found:  # bgp.render never lets one through; this is the last line of defence
            raise ValueError(f"refusing to send a command containing {found.group()!r}")
        loop = asyncio.get_running_loop()
        entry = _Pending(command, loop.create_future(), alone)
        entry.future.add_done_callback(_consume)
        entry.timer = loop.call_later(self.ack_timeout, self._overdue, entry)
        self.pending.append(entry)
        self._exclusive = self._exclusive or alone
        self.writer.write(command.encode("ascii") + b"\n")
        return entry.future

    async def _read(self) -> None:
        reason = "API process gone"
        try:
            while line := await self.reader.readline():
                self._line(line.decode(errors="replace").strip())
        except (OSError, ValueError) as err:
            reason = f"API channel broke: {err}"
        self.close(reason)

    def _line(self, text: str) -> None:
        if not text:
            return
        if text.startswith("{"):
            self._json(text)
        elif text in ("done", "error", "shutdown"):
            self._answer(text)
        elif self.pending:
            self.pending[0].output.append(text)  # output of the oldest command, e.g. `show ...`

    def _json(self, text: str) -> None:
        try:
            message: dict[str, Any] = json.loads(text)
        except ValueError:
            _log.warning("unreadable line from ExaBGP", line=text[:200])
            return
        if "answer" in message:
            self._answer(str(message["answer"]))
        elif message.get("type") == "state":
            neighbor = message.get("neighbor") or {}
            peer = str((neighbor.get("address") or {}).get("peer", ""))
            event = SessionEvent(peer, str(neighbor.get("state", "")), str(neighbor.get("reason", "")))
            if not self._syncing:
                self.events.put_nowait(event)
            elif self.pending and self.pending[0].output:
                self._held.append(event)
            else:
                _log.debug("session event before the channel opened", peer=peer, state=event.state)
        elif message.get("type") == "notification":
            self._notification(message)
        elif message.get("type") == "relay":
            self.close(f"the relay dropped {message.get('dropped')} lines from ExaBGP")

    def _notification(self, message: dict[str, Any]) -> None:
        neighbor = message.get("neighbor")
        if not isinstance(neighbor, dict) or neighbor.get("direction") != "receive":
            return  # ExaBGP's own "shutdown" notice, or one we sent (the down event says so)
        body = neighbor.get("notification") or {}
        try:
            code, subcode = int(body["code"]), int(body["subcode"])
        except (KeyError, TypeError, ValueError):
            return
        peer = str((neighbor.get("address") or {}).get("peer", ""))
        data = str(body.get("data") or "")
        event = NotificationEvent(peer, code, subcode, "" if data in ("0x", "") else data)
        if not self._syncing:
            self.events.put_nowait(event)

    def _answer(self, text: str) -> None:
        if not self.pending or (self._syncing and not self.pending[0].output):
            return  # an answer to a command of an earlier connection
        entry = self.pending.popleft()
        if entry.timer is not None:
            entry.timer.cancel()
        if entry.alone:
            self._exclusive = False
        if entry.future.done():
            pass
        elif text == "done":
            entry.future.set_result(entry.output)
        elif text == "error":
            entry.future.set_exception(CommandFailed(f"ExaBGP refused {entry.command[:200]!r}"))
        else:
            entry.future.set_exception(ChannelDown(f"ExaBGP answered {text!r}"))
        self._room.set()

    def _overdue(self, entry: _Pending) -> None:
        reason = f"no answer to {entry.command[:80]!r} within {self.ack_timeout:g}s"
        self.close(reason, CommandTimeout(reason))
        if self.on_wedged is not None:
            self.on_wedged(reason)

    def close(self, reason: str, error: Exception | None = None) -> None:
        """Fail every unanswered command and close the connection (idempotent)."""
        if self._closed.is_set():
            return
        self.ready = False
        self.close_reason = reason
        while self.pending:
            entry = self.pending.popleft()
            if entry.timer is not None:
                entry.timer.cancel()
            if not entry.future.done():
                entry.future.set_exception(error or ChannelDown(reason))
        self._room.set()
        self._closed.set()
        self.writer.close()
        if self._reader is not asyncio.current_task():
            self._reader.cancel()

    async def closed(self) -> None:
        await self._closed.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
