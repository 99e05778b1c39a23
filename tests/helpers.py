"""Shared test helpers: deadline-based waiting and clients for the embedded API server.

`eventually` replaces sleeps: it polls a condition until it holds or a deadline passes.
`api_client` builds a real kubernetes_asyncio client from a kubeconfig (tests may import
kubernetes_asyncio; the lbipam package may not, outside lbipam.k8s).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,  # noqa: ASYNC109  # a polling deadline, as the shared contract names it
    interval: float = 0.02,
) -> T:
    """Poll `predicate` (sync or async) until it returns something truthy; return that value.

    Exceptions count as "not yet". On timeout, raise AssertionError with the last value or error.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {last!r}")
        await asyncio.sleep(interval)


@asynccontextmanager
async def api_client(kubeconfig: Path) -> AsyncIterator[Any]:
    """A kubernetes_asyncio ApiClient for `kubeconfig`, closed afterwards."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        await api.close()
