"""Helpers shared by the bench scripts that drive `lbipam` processes over HTTP(S).

`Server` runs `python -m lbipam apiserver` (the default, secure way: HTTPS and a bearer token, both
read back from the kubeconfig it writes; `Server.session` connects with them) and `Controller`
`python -m lbipam controller` as child processes; `in_parallel` keeps IN_FLIGHT requests going;
`request` is one JSON request that exits on an error status; `Watch` is a resumable watch over plain
aiohttp (resumes from the last resourceVersion, relists on 410); `cpu_seconds` reads a process's CPU
time from /proc; `until` polls a condition with a deadline; `row` prints one labelled figure;
`bare_list` and `paged_list` time lists; `peak_rss_mb` reads a process's VmHWM; `free_port` finds a
port for a child's metrics server; with BENCH_PROFILE=DIR set, each controller run writes a
cProfile file there (at SIGTERM); `install_crd` creates a CRD and waits until it is
Established. Used by bench/apiserver.py, bench/controller.py and bench/podcidr.py, which run as
scripts (so this module is imported as `_common`).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import gc
import itertools
import json
import os
import signal
import socket
import ssl
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
IN_FLIGHT = 8
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON = {"Content-Type": "application/json"}
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CHILD_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
QUIET = 1.0  # seconds of flat CPU that count as idle
_RUNS = itertools.count(1)  # controller starts in this process, naming their profiles
LEADING = "leading identity="  # the controller's log lines that mark its start-up
IMPORTED = "leading: imported assignments"


def run_client(main: Coroutine[Any, Any, None]) -> None:
    """Run a bench's client on uvloop where installed, as `lbipam apiserver` runs: decrypting TLS
    in asyncio's Python layer would make the client, not the server, what a figure measures."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set so far (VmHWM in /proc), in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def free_port() -> int:
    """A TCP port on 127.0.0.1 free a moment ago (for a child's --metrics-port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def until(
    predicate: Callable[[], bool], seconds: float, what: str, check: Callable[[], None] = lambda: None
) -> None:
    """Poll `predicate` (calling `check` too, which may give up sooner); the figures come from
    the watches' timestamps, not from this loop."""
    deadline = time.perf_counter() + seconds
    while not predicate():
        check()
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out after {seconds:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


def row(label: str, text: str) -> None:
    print(f"  {label:<44}{text}")


class Server:
    """`lbipam apiserver` in a child process; its kubeconfig (next to the database unless given)."""

    def __init__(self, db: Path, kubeconfig: Path | None = None) -> None:
        self.db = db
        self.kubeconfig = kubeconfig or db.with_name(db.name + ".kubeconfig")
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> float:
        """Start it; seconds from spawn to the ready line."""
        began = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lbipam", "apiserver", "--port", "0", "--db", str(self.db),
            "--kubeconfig-out", str(self.kubeconfig),
            stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=CHILD_ENV,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = (await self.process.stdout.readline()).decode().strip()
        if not line.startswith("apiserver ready "):
            raise SystemExit(f"the server did not start: {line!r}")
        self.url = line.split()[-1]
        return time.perf_counter() - began

    def session(self, limit: int = 100, read_bufsize: int = 2**16) -> aiohttp.ClientSession:
        """A raw HTTP session as the kubeconfig connects: the server's URL, CA and bearer token;
        at most `limit` connections, kept alive. A watch line longer than twice `read_bufsize`
        (an object of megabytes) needs a larger one."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        context: ssl.SSLContext | bool = False
        if "certificate-authority-data" in cluster:
            context = ssl.create_default_context(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
            )
        headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
        connector = aiohttp.TCPConnector(limit=limit, ssl=context)
        return aiohttp.ClientSession(
            cluster["server"], connector=connector, headers=headers, read_bufsize=read_bufsize
        )

    async def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()
            self.process = None

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)


class Controller:
    """`lbipam controller --no-leader-elect` in a child process; notes when its log lines appear."""

    def __init__(
        self, kubeconfig: Path, args: Sequence[str] = (), marks: Sequence[str] = (LEADING, IMPORTED)
    ) -> None:
        self.kubeconfig = kubeconfig
        self.args = tuple(args)  # more command-line arguments, e.g. ("--podcidr-target", "node")
        self.marks = tuple(marks)  # the log messages whose first appearance is timed
        self.process: asyncio.subprocess.Process | None = None
        self.began = 0.0
        self.lines: dict[str, float] = {}  # first appearance of each watched message
        self.cpu_at: dict[str, float] = {}  # the controller's CPU seconds when it appeared
        self.problems: list[str] = []  # WARNING and ERROR lines
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.lines, self.cpu_at, self.problems = {}, {}, []
        self.began = time.perf_counter()
        profile: tuple[str, ...] = ()
        if os.environ.get("BENCH_PROFILE"):  # a directory: cProfile each run of the controller
            out = Path(os.environ["BENCH_PROFILE"]) / f"controller-{os.getpid()}-{next(_RUNS)}.prof"
            profile = ("-m", "cProfile", "-o", str(out))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, *profile, "-m", "lbipam", "controller", "--kubeconfig", str(self.kubeconfig),
            "--no-leader-elect", "--reuse-delay", "30", *self.args,
            stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=CHILD_ENV,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            for message in self.marks:
                if message in line and message not in self.lines:
                    self.lines[message] = time.perf_counter()
                    with contextlib.suppress(OSError):  # it may have exited meanwhile
                        self.cpu_at[message] = cpu_seconds(self.process.pid)
            if " WARNING " in line or " ERROR " in line or "Traceback" in line:
                self.problems.append(line)

    def since_start(self, message: str) -> float:
        return self.lines.get(message, float("nan")) - self.began

    async def stop(self) -> float:
        """SIGTERM; seconds until it exited."""
        assert self.process is not None
        assert self._reader is not None
        began = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        await self.process.wait()
        await self._reader
        return time.perf_counter() - began

    def check(self) -> None:
        """Give up (SystemExit) if the controller has exited."""
        assert self.process is not None
        if self.process.returncode is not None:
            last = "\n".join(self.problems[-10:])
            raise SystemExit(f"the controller exited with {self.process.returncode}:\n{last}")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def peak_rss_mb(self) -> float:
        """The controller's peak resident set so far (VmHWM), in MB."""
        assert self.process is not None
        return peak_rss_mb(self.process.pid)

    async def idle_since(self, quiet: float = QUIET, threshold: float = 0.02) -> float:
        """Wait until the controller has used at most `threshold` CPU seconds for `quiet` seconds;
        return the moment it last did work (perf_counter time)."""
        times: list[float] = []
        cpus: list[float] = []
        while True:
            self.check()
            times.append(time.perf_counter())
            cpus.append(self.cpu_seconds())
            start = bisect.bisect_left(times, times[-1] - quiet)
            if times[-1] - times[0] >= quiet and cpus[-1] - cpus[start] <= threshold:
                return times[bisect.bisect_left(cpus, cpus[-1] - threshold)]
            await asyncio.sleep(0.02)


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


def parse(body: bytes) -> Any:
    """json.loads with the cyclic GC off: its collections during a 20 MB parse would double the
    time, and the ceiling is what a client that avoids them gets."""
    gc.disable()
    try:
        return json.loads(body)
    finally:
        gc.enable()


async def bare_list(http: aiohttp.ClientSession, path: str, label: str) -> tuple[float, dict[str, str]]:
    """Median of 5 unpaginated lists of `path`, parsed; returns it and name -> resourceVersion."""
    times = []
    for _ in range(5):
        began = time.perf_counter()
        async with http.get(path) as response:
            items = parse(await response.read())["items"]
        times.append(time.perf_counter() - began)
    took = statistics.median(times)
    row(f"bare list of {len(items)} {label}", f"{1000 * took:8.0f} ms (median of 5)")
    return took, {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}


async def paged_list(http: aiohttp.ClientSession, path: str, what: str, limit: int = 500) -> None:
    """One list of `path` in pages of `limit`, as lbipam's informers list."""
    began, token, count = time.perf_counter(), "", 0
    while True:
        params = {"limit": str(limit), **({"continue": token} if token else {})}
        async with http.get(path, params=params) as response:
            page = parse(await response.read())
        count += len(page["items"])
        token = page["metadata"].get("continue") or ""
        if not token:
            break
    row(f"list of {count} {what} in pages of {limit}", f"{1000 * (time.perf_counter() - began):8.0f} ms")


async def install_crd(http: aiohttp.ClientSession, path: Path) -> None:
    """Create the CustomResourceDefinition in the YAML file `path`; wait until it is Established."""
    crd = yaml.safe_load(path.read_text())  # noqa: ASYNC240 (a small file, before any timing)
    await request(http, "POST", CRDS, crd)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        async with http.get(f"{CRDS}/{crd['metadata']['name']}") as response:
            conditions = ((await response.json()).get("status") or {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"the CRD {crd['metadata']['name']} did not become Established")


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
