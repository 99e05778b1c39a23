"""Capture what the stock kubectl sends for its typed creates: protobuf bodies and their JSON twins.

For each case below, `kubectl <args> -v=9` logs the request body it POSTs as a hex dump; that body
is written to `<case>.pb`. `kubectl <args> --dry-run=client -o json` prints the same Go object
through Go's encoding/json; that is written to `<case>.json`, the JSON the decoder must produce.
Any reachable API server will do (the body is logged before the answer); the files committed here
were captured with kubectl v1.32.4 against `lbipam apiserver`:

    lbipam apiserver --port 0 --db :memory: --kubeconfig-out /tmp/kc &
    KUBECONFIG=/tmp/kc python tests/data/kubectl-protobuf/capture.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Test data: a password and a config file with bytes that are not UTF-8.
BINARY = bytes(range(256))
CASES = {
    "secret-generic": [
        "create",
        "secret",
        "generic",
        "bgp-md5",
        "--from-literal=password=hunter2",
        "--from-literal=user=admin",
    ],
    "secret-from-file": [
        "create",
        "secret",
        "generic",
        "blob",
        "--from-file=key.bin={binary}",
        "--type=example.com/blob",
    ],
    "secret-docker-registry": [
        "create",
        "secret",
        "docker-registry",
        "pull",
        "--docker-server=registry.example",
        "--docker-username=u",
        "--docker-password=p",
    ],
    "configmap": [
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        "--from-literal=empty=",
        "--from-file=blob={binary}",
    ],
    "namespace": ["create", "namespace", "team-a"],
    "service-loadbalancer": ["create", "service", "loadbalancer", "web", "--tcp=80:8080", "--tcp=443:8443"],
    "service-nodeport": ["create", "service", "nodeport", "np", "--tcp=80:http", "--node-port=30080"],
    "service-clusterip-headless": [
        "create",
        "service",
        "clusterip",
        "headless",
        "--clusterip=None",
        "--tcp=5678:8080",
    ],
    "service-externalname": ["create", "service", "externalname", "ext", "--external-name=www.example.com"],
}
_DUMP = re.compile(r"^\s*[0-9a-f]{8}\s+((?:[0-9a-f]{2}\s+)+)\|")


def request_body(log: str) -> bytes:
    """The first hex-dumped "Request Body" of a kubectl -v=9 log."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if '"Request Body" body=<' in line)
    data = bytearray()
    for line in lines[start + 1 :]:
        match = _DUMP.match(line)
        if match is None:
            break
        data += bytes.fromhex(match.group(1).replace(" ", ""))
    return bytes(data)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "blob.bin"
        binary.write_bytes(BINARY)
        for name, template in CASES.items():
            args = [arg.replace("{binary}", str(binary)) for arg in template]
            sent = subprocess.run(["kubectl", *args, "-v=9"], capture_output=True, text=True, check=False)
            (HERE / f"{name}.pb").write_bytes(request_body(sent.stderr))
            dry = subprocess.run(
                ["kubectl", *args, "--dry-run=client", "-o", "json"],
                capture_output=True,
                text=True,
                check=True,
            )
            (HERE / f"{name}.json").write_text(dry.stdout)
            print(f"{name}: {len(request_body(sent.stderr))} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
