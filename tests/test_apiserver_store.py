"""The embedded API server's store on a real SQLite file: durability, group commit, resourceVersions,
the event history, and a failing database (500s, never a silent loss; a full disk is in
test_apiserver_attacks.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.apiserver.storage.store import Expired, Store


def obj(name: str, value: str = "1") -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "default"}, "data": {"v": value}}


async def test_concurrent_writes_share_transactions_and_survive_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = Store(path)
    store.open()
    changes = await asyncio.gather(
        *(store.stage("ADDED", "/configmaps", "default", f"cm{i}", obj(f"cm{i}"), None) for i in range(200))
    )
    assert [c.rv for c in changes] == list(range(1, 201))
    assert 1 <= store.commits < 200, "waiting writes were grouped into fewer transactions"
    deleted = await store.stage("DELETED", "/configmaps", "default", "cm0", obj("cm0"), changes[0].obj)
    await store.close()
    again = Store(path)
    again.open()
    try:
        assert again.rv == deleted.rv == 201
        assert again.count("/configmaps") == 199
        assert again.get("/configmaps", "default", "cm0") is None
        assert again.get("/configmaps", "default", "cm7") == changes[7].obj
        with pytest.raises(Expired):
            again.replay("/configmaps", 200)  # the history does not outlive the process
        assert again.replay("/configmaps", 201) == []
    finally:
        await again.close()


async def test_history_is_bounded_and_compaction_expires_older_versions() -> None:
    store = Store(":memory:", history=3)
    store.open()
    try:
        for i in range(5):
            await store.stage("ADDED", "/configmaps", "default", f"cm{i}", obj(f"cm{i}"), None)
        assert [c.rv for c in store.replay("/configmaps", 2)] == [3, 4, 5]
        with pytest.raises(Expired, match=r"too old resource version: 1 \(2\)"):
            store.replay("/configmaps", 1)
        store.compact()
        with pytest.raises(Expired):
            store.replay("/configmaps", 4)
        assert store.replay("/configmaps", 5) == []
    finally:
        await store.close()


async def test_staged_writes_are_seen_by_later_writes_but_not_by_reads() -> None:
    store = Store(":memory:")
    store.open()
    try:
        pending = store.stage("ADDED", "/configmaps", "default", "a", obj("a"), None)
        assert store.latest("/configmaps", "default", "a") is not None
        assert store.get("/configmaps", "default", "a") is None, "not acknowledged, not visible"
        await pending
        assert store.get("/configmaps", "default", "a") is not None
    finally:
        await store.close()


async def test_a_broken_database_fails_writes_and_readiness_never_reads(tmp_path: Path) -> None:
    server = EmbeddedAPIServer(db=str(tmp_path / "s.db"), port=0)
    await server.start()
    try:
        async with server.session() as http:
            cms = "/api/v1/namespaces/default/configmaps"
            assert server.store._conn is not None
            server.store._conn.close()  # the database goes away under the writer
            for name in ("lost", "later"):  # each write fails on its own, as the disk does
                async with http.post(cms, json={"metadata": {"name": name}}) as response:
                    assert response.status == 500
                    assert (await response.json())["reason"] == "InternalError"
            async with http.get(cms) as response:
                assert response.status == 200
                assert (await response.json())["items"] == [], "no write was acknowledged or shown"
            async with http.get("/readyz") as response:
                assert response.status == 500
                assert "store: cannot write" in await response.text()
            async with http.get("/healthz") as response:
                assert response.status == 200, "the process is alive: only readiness fails"
    finally:
        server.store._conn = None
        await server.stop()
