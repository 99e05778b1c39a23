"""What each resource of the embedded server is: the write pipeline and the per-kind strategies.

`objects.py` runs every write in the real server's order and calls the kind's `Strategy`
(`strategy.py`): `builtins.py`, `services.py` (with `ipalloc.py` and `svcvalidation.py`),
`events.py`, `crd.py` (with `crdcheck.py`, `schema.py`, `formats.py`). `validation.py`,
`shapes.py` and `selectors.py` are the shared rules. Uses `patch/` and `storage/`; used by `wire/`
and `server.py`.
"""
