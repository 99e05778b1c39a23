"""Helpers shared by the bench scripts that drive `lbipam` processes over plain HTTP.

`Server` runs `python -m lbipam apiserver` as a child process; `in_parallel` keeps IN_FLIGHT
requests going; `request` is one JSON request that exits on an error status; `Watch` is a
resumable watch over plain aiohttp (resumes from the last resourceVersion, relists on 410);
`cpu_seconds` reads a process's CPU time from /proc. Used by bench/apiserver.py and
bench/controller.py, which are run as scripts (so this module is imported as `_common`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
IN_FLIGHT = 8
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON = {"Content-Type": "application/json"}
CHILD_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


class Server:
    """`lbipam apiserver` in a child process."""

    def __init__(self, db: Path, kubeconfig: Path | None = None) -> None:
        self.db = db
        self.kubeconfig = kubeconfig
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> float:
        """Start it; seconds from spawn to the ready line."""
        began = time.perf_counter()
        extra = ["--kubeconfig-out", str(self.kubeconfig)] if self.kubeconfig else []
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lbipam", "apiserver", "--port", "0", "--db", str(self.db), *extra,
            stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=CHILD_ENV,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = (await self.process.stdout.readline()).decode().strip()
        if not line.startswith("apiserver ready "):
            raise SystemExit(f"the server did not start: {line!r}")
        self.url = line.split()[-1]
        return time.perf_counter() - began

    async def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()
            self.process = None

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)


async def in_parallel(count: int, one: Callable[[int], Awaitable[None]], in_flight: int = IN_FLIGHT) -> float:
    """Run one(0..count-1) with `in_flight` at a time; returns the elapsed seconds."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return time.perf_counter() - began


async def request(http: aiohttp.ClientSession, method: str, path: str, body: Any, headers: Any = None) -> Any:
    async with http.request(method, path, data=json.dumps(body), headers=headers or JSON) as response:
        payload = await response.json()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {payload.get('message')}")
        return payload


Handler = Callable[[str, dict[str, Any], float], None]


class Watch:
    """A watch of one collection that calls `handler(type, object, received_at)` for every event.

    Resumes from the last resourceVersion when the server ends the stream (or closes a watcher
    that fell behind), and relists on 410 Expired (items are then replayed as ADDED). Runs as a
    task until cancelled.
    """

    def __init__(self, http: aiohttp.ClientSession, path: str, handler: Handler) -> None:
        self.http = http
        self.path = path
        self.handler = handler
        self.resource_version = ""
        self.events = 0
        self.resumes = 0
        self.relists = 0

    async def list(self) -> list[dict[str, Any]]:
        """List the collection (once) and remember its resourceVersion to watch from."""
        async with self.http.get(self.path) as response:
            listing = await response.json()
        self.resource_version = listing["metadata"]["resourceVersion"]
        items: list[dict[str, Any]] = listing["items"]
        return items

    async def run(self) -> None:
        if not self.resource_version:
            await self.list()
        while True:
            if not await self._stream():
                self.relists += 1
                received = time.perf_counter()
                for item in await self.list():
                    self.handler("ADDED", item, received)
            self.resumes += 1

    async def _stream(self) -> bool:
        """One watch stream; False when the resourceVersion expired."""
        params = {"watch": "true", "resourceVersion": self.resource_version, "allowWatchBookmarks": "true"}
        timeout = aiohttp.ClientTimeout(total=None)
        async with self.http.get(self.path, params=params, timeout=timeout) as response:
            if response.status == 410:
                return False
            async for line in response.content:
                received = time.perf_counter()
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return False
                    raise SystemExit(f"watch {self.path}: {obj.get('message')}")
                self.resource_version = obj["metadata"]["resourceVersion"]
                if kind != "BOOKMARK":
                    self.events += 1
                    self.handler(kind, obj, received)
        return True
