"""The command line: from argv and a composed Hydra config to one job's run and its exit code.

Owns the entry's helpers (`app`: run a job, print its summary, map errors to exit codes), Hydra's flags anywhere on
the line (`hydra_flags`), one-line errors for what Hydra finds while composing (`compose_errors`, `yaml_errors`),
the user's `--config-dir` folders (`config_dirs`) and the small commands' frame (`commands`: sweep.report,
sweep.compare, sweep.multirun).

May import: every part below it (running, planning, report, rundir, models, axes, files, prompts) and the
leaves (errors, paths, atomic, naming, safe_log, resume).
Nothing below imports it, except the small commands' entry points (sweep.report.__main__, sweep.compare,
sweep.multirun), which use `commands`.
"""
