"""The run directory: what a run leaves on disk and the guard around it.

Owns the guard (`guard`: one writer at a time, what a directory holds, moving an old experiment aside), the results
table and the manifest (`results`: results.csv and sweep.json, the contract with the report) and what each image and
row carries (`metadata`: PNG text chunks, the software fingerprint).

May import: models (LoRA, ControlNet and noise facts for the record), axes, files, prompts and the leaves.
Imported by running, planning, the report and the command line. Names of the former module `sweep.rundir` (now
`sweep.rundir.guard`) are served from here for one release.
"""


def __getattr__(name: str):
    # `from sweep.rundir import X` named the module that is now sweep.rundir.guard. A submodule's own name must
    # stay unknown here, so that the import system imports it.
    import importlib
    import importlib.util

    if name.startswith("__") or importlib.util.find_spec(f"{__name__}.{name}") is not None:
        raise AttributeError(name)
    return getattr(importlib.import_module("sweep.rundir.guard"), name)
