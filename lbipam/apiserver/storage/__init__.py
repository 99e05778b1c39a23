"""What the embedded server keeps: objects, their history and the resource types it serves.

`store.py` is the SQLite store with the committed index and the bounded event history;
`watch.py` routes committed changes to open watches; `registry.py` is the live set of resource
types (built-ins and CRD-defined). Uses only `errors.py`; used by every layer above.
"""
