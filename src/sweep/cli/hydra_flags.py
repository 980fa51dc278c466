"""Hydra's own flags anywhere on the command line, as Hydra users type them (`... model=tiny -m guidance_scale=3,7`).

Hydra parses its command line with argparse, whose overrides are one positional list: overrides on both sides
of a flag fail with "unrecognized arguments". The entry point moves the flags, with their values, in front of
the overrides before Hydra parses (a flag whose value is optional and not given, `--info`, goes last); the order
within the flags and within the overrides is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

# Hydra 1.3's flags (hydra._internal.utils.get_args_parser): without a value, with one, with an optional one.
NO_VALUE = frozenset({"--help", "-h", "--hydra-help", "--version", "--resolve", "--run", "-r", "--multirun", "-m",
                      "--shell-completion", "-sc"})
ONE_VALUE = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                       "--config-dir", "-cd", "--experimental-rerun"})
OPTIONAL_VALUE = {"--info": ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")}
OPTIONAL_VALUE["-i"] = OPTIONAL_VALUE["--info"]


def flags_first(argv: Sequence[str]) -> list[str]:
    """argv with Hydra's flags (and each flag's value) before the overrides, each group in its own order."""
    flags: list[str] = []
    overrides: list[str] = []
    last: list[str] = []  # a flag whose value is optional or missing: after the overrides, or it would take one
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        flag = arg.partition("=")[0] if arg.startswith("-") else ""
        if arg in ONE_VALUE and i + 1 < len(args):
            flags += args[i : i + 2]  # `--cfg job`, `-cd DIR`: the next word is the value, whatever it looks like
            i += 2
            continue
        if arg in OPTIONAL_VALUE and i + 1 < len(args) and args[i + 1] in OPTIONAL_VALUE[arg]:
            flags += args[i : i + 2]
            i += 2
            continue
        if arg in ONE_VALUE or arg in OPTIONAL_VALUE:
            last.append(arg)  # `--info` alone; `-cn` as the last word (argparse then says its value is missing)
        elif arg in NO_VALUE or flag in ONE_VALUE or flag in OPTIONAL_VALUE:
            flags.append(arg)  # `-m`, `--cfg=job`
        else:
            overrides.append(arg)
        i += 1
    return flags + overrides + last


# Hydra runs one of these modes per command (hydra._internal.utils._run_hydra refuses two with a traceback).
MODES = {"--run": "--run", "-r": "--run", "--multirun": "--multirun", "-m": "--multirun", "--cfg": "--cfg",
         "-c": "--cfg", "--info": "--info", "-i": "--info", "--shell-completion": "--shell-completion",
         "-sc": "--shell-completion"}


def conflicting_modes(argv: Sequence[str]) -> str | None:
    """The one error line for two of Hydra's modes in one command (`-m ... --cfg job`), or None."""
    modes = list(dict.fromkeys(MODES[a.partition("=")[0]] for a in argv if a.partition("=")[0] in MODES))
    if len(modes) < 2:
        return None
    hint = (" (to see a multirun job's config, run the job's overrides without -m and with --cfg job)"
            if "--multirun" in modes and "--cfg" in modes else "")
    return f"{' and '.join(modes)}: got both; allowed: one of --run, --multirun, --cfg, --info and " \
           f"--shell-completion per command{hint}"
