"""A full disk under the embedded API server: the write that cannot be stored fails alone, the
server stays up and says it is not ready, and writes succeed again once there is room.

The disk is a real 4 MiB tmpfs the test mounts (root only) and unmounts in `finally`; the database
lives on it and a filler file takes the rest of the room.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbipam.apiserver.server import EmbeddedAPIServer
from tests.apiserver_probe import healthz_meanwhile, lists_parse_and_objects_yield

CMS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the file system is full."""
    chunk = b"\0" * 65536
    with path.open("wb") as handle:
        while True:
            try:
                handle.write(chunk)
                handle.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return


def config_map(name: str) -> bytes:
    return json.dumps({"metadata": {"name": name}, "data": {"blob": "x" * 200_000}}).encode()


async def test_a_full_disk_fails_that_write_only_and_writes_resume(small_disk: Path) -> None:
    server = EmbeddedAPIServer(db=str(small_disk / "api.db"), port=0)
    await server.start()
    try:
        async with server.session() as http:

            async def post(name: str) -> tuple[int, dict[str, object]]:
                headers = {"Content-Type": "application/json"}
                async with http.post(CMS, data=config_map(name), headers=headers) as response:
                    return response.status, json.loads(await response.text())

            assert (await post("before"))[0] == 201
            filler = small_disk / "filler"
            with contextlib.suppress(OSError):
                fill(filler)
            async with healthz_meanwhile(server):
                stored, failure = [], None
                for i in range(40):  # the last free pages of the database's files go first
                    status, reply = await post(f"cm{i}")
                    if status != 201:
                        failure = (status, reply)
                        break
                    stored.append(f"cm{i}")
                assert failure is not None, "the disk never filled up"
                status, reply = failure
                assert (status, reply["reason"]) == (500, "InternalError"), reply
                assert "full" in str(reply["message"]), reply
                async with http.get("/readyz") as ready:
                    assert ready.status == 500
                    assert "store: cannot write" in await ready.text()
                async with http.get(f"{CMS}/cm{len(stored)}") as missing:
                    assert missing.status == 404, "the failed write is nowhere"
                async with http.get(CMS) as listed:
                    names = {i["metadata"]["name"] for i in json.loads(await listed.text())["items"]}
                assert names == {"before", *stored}
            filler.unlink()
            assert (await post("after"))[0] == 201, "writes succeed again once there is room"
            async with http.get("/readyz") as ready:
                assert (ready.status, await ready.text()) == (200, "ok")
        await lists_parse_and_objects_yield(server, [CMS])
    finally:
        await server.stop()
