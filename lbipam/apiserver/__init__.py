"""The embedded Kubernetes-compatible API server (`lbipam apiserver`), in four layers.

Each layer imports only the layers below it (an import-linter contract in pyproject.toml):

- `server.py`, `main.py`: the assembly. `EmbeddedAPIServer` wires the layers together;
  `main.py` is the `lbipam apiserver` command.
- `wire/`: the HTTP face. The aiohttp application, URL routing, resource handlers and reads,
  discovery, OpenAPI, Tables, TLS, kubeconfigs, request recording and fault injection.
- `kinds/`: what each resource is. The write pipeline (`objects.py`), the per-kind strategies
  (built-ins, Services, Events, CRDs and their custom objects), validation and selectors.
- `patch/`: the patch machinery. JSON, merge and strategic merge patches, server-side apply,
  managed fields and field sets; pure functions of objects and resource types.
- `storage/`: what is kept. The SQLite store with its committed index and event history,
  the watch hub, and the registry of served resource types.

`errors.py` (the Kubernetes `Status` errors) is shared by all of them.
"""
