"""Processes the tests start and stop: test routers (tests/bgplab.py's BIRD and GoBGP,
tests/frrlab.py's FRR, tests/labrouters.py) and the commands that talk to them.

`launch` checks the router's port is free (BIRD only logs `Address already in use` and runs on),
writes its configuration and starts it, in a network namespace the test created if given;
`terminate` ends one of our processes by its handle (SIGTERM, SIGKILL if it lingers); `run` runs a
command to the end; `eventually_ok` retries a call until it stops raising.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def port_free(host: str, port: int) -> bool:
    """Nothing listens on host:port. SO_REUSEADDR as BIRD sets it: a closed session's TIME_WAIT
    on the port (after a BIRD restart) does not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run(*argv: str, timeout: float = 10.0) -> str:  # noqa: ASYNC109
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {output.decode(errors='replace')}")
    return output.decode(errors="replace")


async def eventually_ok(call: Any, timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    """Await `call()` until it stops raising, within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await call()
        except Exception:
            if loop.time() >= deadline:
                raise
        await asyncio.sleep(0.05)


async def launch(
    directory: Path,
    config: tuple[str, str],
    listen: tuple[str, int],
    argv: Callable[[Path], Sequence[str]],
    netns: str | None = None,
) -> asyncio.subprocess.Process:
    """Start a router listening on `listen` (address, port): its `config` (file name, text)
    written into `directory`, `argv(config path)` run in `netns` if given, output discarded.
    Outside a namespace the port must be free first."""
    address, port = listen
    if netns is None and not port_free(address, port):
        raise RuntimeError(f"{address}:{port} is taken")
    conf = _write(directory, *config)
    wrap = ["ip", "netns", "exec", netns] if netns else []
    return await asyncio.create_subprocess_exec(
        *wrap, *argv(conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


async def terminate(proc: asyncio.subprocess.Process | None, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """End our process `proc` (if it still runs): SIGTERM, and SIGKILL after `timeout` seconds."""
    if proc is None or proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
