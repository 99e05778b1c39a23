"""Kubeconfig files pointing at the embedded server: TLS with CA data and a token, or plain HTTP.

The file is written the way a secret must be: a fresh temporary file created with O_EXCL (mode
0600, a random name in the target's directory, so no pre-existing file or link decides its mode
or target) renamed over the target. A target that is a symbolic link is refused rather than
replaced or followed. Called by `EmbeddedAPIServer.write_kubeconfig` (and so by `lbipam apiserver
--kubeconfig-out`).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import tempfile
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
    """Write the kubeconfig readable by its owner only (it holds a token); returns the path.

    OSError (ELOOP) when `path` is a symbolic link: the caller asked for a file, and a link
    someone else placed there must not redirect the token."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        raise OSError(errno.ELOOP, "refusing to write the kubeconfig through a symbolic link", str(path))
    text = yaml.safe_dump(render(url, ca_pem, token), sort_keys=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
