"""The patch machinery of the embedded server: pure functions of objects and resource types.

`patches.py` is the entry point (JSON, merge and strategic merge patches, server-side apply);
`strategic.py` knows list types and merge keys, `managedfields.py` keeps metadata.managedFields,
`fieldsets.py` is the structured-merge-diff field-set algebra. Uses `storage/registry.py` for
resource types; used by `kinds/` and `wire/`.
"""
