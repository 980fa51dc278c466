"""Planning a sweep: from a composed config to checked cells, before any model loads.

Owns the structured schema (`schema`) and its checks (`config_checks`), the plan (`plan`: base values, axes, cells,
layout), cells and their ids, batches and shape order (`grid`), sweep-file titles (`titles`), random seeds shared by
a multirun (`shared_seeds`) and the memory bound (`memory`).

May import: report (the checks of `report.*` keys: reference, scores), rundir, models (their checks are
torch-free until the input is known to be good), axes, files, prompts and the leaves. Imported by running and
the command line.
"""
