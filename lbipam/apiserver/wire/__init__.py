"""The embedded server's HTTP face: what a client sends and what it gets back.

`http.py` builds the aiohttp application (authentication, errors as `Status`), `routing.py`
resolves URLs, `handlers.py` and `reads.py` serve resource URLs through the kinds' pipeline,
`discovery.py`, `openapi.py` and `tables.py` render the documents kubectl reads, `tls.py` and
`kubeconfig.py` are how clients connect, `audit.py` records requests and `faults.py` injects
failures for tests. Uses `kinds/`, `patch/` and `storage/`; used by `server.py`.
"""
