"""The speaker's side of its BFD process: start it, tell it the wanted sessions, hear the states.

`BfdClient.run()` (a task of the speaker) starts `python -m bgp.bfd` (`bgp.bfd.daemon`), sends
it the last wanted set (`configure`, also after a restart), reads its state lines into
`states` and calls `on_change(name)` for each. When the process dies, every session counts as
Down (the routers see the same) and it is started again after a back-off. `stop(admin_down=)`
ends it: with AdminDown to every peer for a graceful stop. Called by `bgp.speaker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_log = logging.getLogger("bgp.bfd.client")
BACKOFF = (0.5, 30.0)  # first and longest wait before a dead BFD process is started again


@dataclass(frozen=True, slots=True)
class BfdState:
    """One session as the BFD process last reported it."""

    name: str
    peer: str
    local: str
    state: str  # Up, Down, Init, AdminDown
    diag: str = "none"
    remote_state: str = "Down"
    error: str = ""


class BfdClient:
    def __init__(
        self, on_change: Callable[[str], None] | None = None, *, command: Sequence[str] = ()
    ) -> None:
        self.on_change = on_change
        self.command = list(command) or [sys.executable, "-m", "bgp.bfd"]
        self.states: dict[str, BfdState] = {}
        self.restarts = 0
        self._wanted: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._stats: asyncio.Future[dict[str, Any]] | None = None
        self._stopping = False
        self._needed = asyncio.Event()  # set once a session is wanted: no process before

    def configure(self, sessions: Sequence[dict[str, Any]]) -> None:
        """The wanted sessions (`bgp.bfd.daemon` wire form); sent now if the process runs."""
        wanted = list(sessions)
        if wanted == self._wanted:
            return
        self._wanted = wanted
        if wanted:
            self._needed.set()
        names = {item["name"] for item in wanted}
        for name in set(self.states) - names:
            del self.states[name]
            self._changed(name)
        self._write({"sessions": wanted})

    async def run(self) -> None:
        """Keep the BFD process running until `stop`. A cancelled `run` leaves the process to
        `stop` (which can still send AdminDown); if this process dies instead, the BFD process
        reads end of input and exits without a word, as a crash should look to the routers."""
        delay = BACKOFF[0]
        await self._needed.wait()
        while not self._stopping:
            began = asyncio.get_running_loop().time()
            await self._run_once()
            if self.stopping():
                return
            if asyncio.get_running_loop().time() - began > 60:
                delay = BACKOFF[0]
            _log.warning("BFD process exited; starting it again in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF[1])
            self.restarts += 1

    def stopping(self) -> bool:
        return self._stopping

    async def stop(self, *, admin_down: bool = True) -> None:
        """End the process; with `admin_down`, after it told every peer (bounded: 2 s)."""
        self._stopping = True
        await self._end(graceful=admin_down)

    async def stats(self) -> dict[str, Any]:
        """The process's counters (`bgp.bfd.engine.Stats`)."""
        self._stats = asyncio.get_running_loop().create_future()
        self._write({"stats": True})
        async with asyncio.timeout(5.0):  # not wait_for: on 3.11 it can swallow a cancel
            return await self._stats

    # ---- internals ----------------------------------------------------------------------------
    async def _run_once(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        if self._wanted:
            self._write({"sessions": self._wanted})
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            self._on_line(line)
        await self._proc.wait()
        self._proc = None
        for name, old in list(self.states.items()):
            self.states[name] = BfdState(old.name, old.peer, old.local, "Down", "process_exited")
            self._changed(name)

    def _on_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            _log.warning("BFD process wrote %r", line[:200])
            return
        if "stats" in message:
            if self._stats is not None and not self._stats.done():
                self._stats.set_result(message["stats"])
            return
        if "name" not in message:
            _log.warning("BFD process: %s", message.get("error", message))
            return
        state = BfdState(
            message["name"], message["peer"], message["local"], message["state"],
            message.get("diag", "none"), message.get("remoteState", "Down"), message.get("error", ""),
        )  # fmt: skip
        if any(item["name"] == state.name for item in self._wanted):
            self.states[state.name] = state
            self._changed(state.name)

    def _changed(self, name: str) -> None:
        if self.on_change is not None:
            self.on_change(name)

    def _write(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def _end(self, *, graceful: bool) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if graceful:
            self._write({"shutdown": True})
        with contextlib.suppress(OSError, AttributeError):
            assert proc.stdin is not None
            proc.stdin.close()  # end of input: the process exits (without AdminDown unless asked)
        try:
            async with asyncio.timeout(2.0):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
