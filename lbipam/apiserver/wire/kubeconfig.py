"""Kubeconfig files pointing at the embedded server: plain HTTP, or TLS with CA data and a token.

Called by `EmbeddedAPIServer.write_kubeconfig` (and so by `lbipam apiserver --kubeconfig-out`).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

NAME = "lbipam-embedded"


def render(url: str, ca_pem: bytes | None, token: str | None) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": cluster}],
        "users": [{"name": NAME, "user": user}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": "default"}}],
        "current-context": NAME,
        "preferences": {},
    }


def write(path: Path, url: str, ca_pem: bytes | None, token: str | None) -> Path:
    """Write the kubeconfig readable by its owner only (it may hold a token); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(render(url, ca_pem, token), sort_keys=False)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path
