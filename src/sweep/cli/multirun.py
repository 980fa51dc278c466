"""Hydra multirun: merge every job's run directory into one table and one comparison report.

`MergeReport` is a Hydra callback (registered in conf/config.yaml under `hydra.callbacks`). At the end of a
multirun, on whatever launcher ran the jobs (in-process, submitit local or SLURM), it reads each job's run dir
(`<sweep dir>/<job>/results.csv`, `status.json`, `.hydra/overrides.yaml`) and writes into the sweep dir:

- `results.csv`: every row of every job, with `job` (Hydra's job number) and `overrides` (the job's
  command-line overrides) added, image paths relative to the sweep dir, and a column for any swept key that is
  not already an ordinary column (`model.compile=true,false` -> column `model.compile`);
- `jobs.csv`: one row per job: status (ok, failed, error, incomplete), images, error, overrides, and the SLURM
  job id (`7_1`) where the job ran under SLURM;
- `sheets/`, `summary.csv`, `plots/`, `index.html`: the report, with the keys swept on the command line on its axes;
- `status.json`: counts, failed jobs, the layouts chosen, errors.

A failed job never stops the merge; it is recorded and makes the command's exit code non-zero. To merge a
sweep dir again (a launcher that died before the end, another layout), run `python -m sweep.cli.multirun DIR`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from sweep.report.result import sheet_lines

log = logging.getLogger("sweep")

JOBS = "jobs.csv"
JOB_COLUMNS = ["job", "status", "images", "ok", "failed", "error", "dir", "overrides", "slurm_job"]
# The multirun this process launched (set when it starts): where to merge if the launcher itself fails.
_ACTIVE: dict[str, Any] = {}
SLOTS = ("rows", "cols", "sheets")
# Override keys that name a results.csv column other than their last part (axes: see column_for).
KEY_COLUMNS = {"height": "resolution", "width": "resolution", "model.name": "model", "model.path": "model",
               "model.id": "model", "sweep.name": "sweep"}


@dataclass
class Job:
    num: int
    dir: Path
    overrides: list[str]
    rows: list[dict[str, str]]
    status: str  # ok | failed (some images failed) | error (nothing run: bad input, crash) | incomplete
    error: str = ""
    exit_code: int = 0
    layout: dict[str, Any] = field(default_factory=dict)
    slurm_job: str = ""

    @property
    def name(self) -> str:
        return f"job {self.num}" + (f" (SLURM job {self.slurm_job})" if self.slurm_job else "")


@dataclass
class Merged:
    sweep_dir: Path
    jobs: list[Job]
    rows: int = 0
    swept: list[str] = field(default_factory=list)
    layouts: list[str] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)
    viewer: Path | None = None
    errors: list[str] = field(default_factory=list)
    insights: list[str] = field(default_factory=list)  # the merged report's knee / seed-spread sentences
    sheet_note: str = ""

    @property
    def exit_code(self) -> int:
        return max([j.exit_code for j in self.jobs] + [1 if self.errors else 0])

    def lines(self) -> list[str]:
        bad = [j for j in self.jobs if j.status != "ok"]
        out = [f"multirun: {len(self.jobs)} jobs ({len(bad)} not ok), {self.rows} images merged "
               f"-> {self.sweep_dir / 'results.csv'}"]
        out += sheet_lines(self.sheets, None, self.sheet_note)  # the viewer has its own line
        out += [f"viewer:  {self.viewer}"] if self.viewer else []
        out += self.insights
        out += [f"FAILED {j.name} ({' '.join(j.overrides)}): {j.status}: {j.error}" for j in bad]
        out += [f"error:   {e}" for e in self.errors]
        return out


def _refuse_links(sweep_dir: Path) -> None:
    """Before Hydra writes multirun.yaml or any job starts: a sweep dir holding a link (a job dir `0 -> /elsewhere`,
    jobs.csv, sheets/) is refused with one line, exit 2 (docs/security.md)."""
    from sweep.errors import SweepError
    from sweep.rundir.guard import check_links
    from sweep.safe_log import escape_controls

    try:
        check_links(sweep_dir, "hydra.sweep.dir")
    except SweepError as exc:
        print(f"error: {escape_controls(str(exc))}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)


class MergeReport(Callback):
    """Writes the merged results.csv, jobs.csv and comparison sheets when a multirun ends."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        """Pin the sweep dir for every job.

        Hydra resolves `hydra.sweep.dir` again in each job, with that job's overrides: a dir named after the
        sweep would differ between the jobs of `-m sweep=a,b` (and from the dir merged at the end). Jobs are
        composed from the multirun's hydra overrides plus their own, so one more override fixes the dir.
        """
        from omegaconf import open_dict, read_write

        if _sweeps_several(config):
            # This config holds the default sweep, not one of the swept ones: name the folder for all of them.
            with read_write(config), open_dict(config):
                config.sweep.name = "sweeps"
        resolved = str(config.hydra.sweep.dir)
        _refuse_links(Path(resolved))
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.sweep.dir = resolved
            config.hydra.overrides.hydra.append(f"hydra.sweep.dir={_quote(resolved)}")
        if int(os.environ.get("RANK", "0")) == 0:
            log.info(estimate(config))
        from omegaconf import OmegaConf

        from sweep.cli.app import OUTCOMES

        OUTCOMES.clear()
        _ACTIVE.update(sweep_dir=Path(resolved).resolve(),
                       report=dict(OmegaConf.select(config, "report", default=None) or {}),
                       before=_snapshot(Path(resolved)))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        if int(os.environ.get("RANK", "0")) != 0:
            # torchrun -m sweep -m ...: jobs wrote into the main rank's dirs; it merges, once.
            _remove_if_empty(sweep_dir)
            return
        from sweep.cli.app import EXIT, OUTCOMES

        if OUTCOMES and all(o == "refused" for o in OUTCOMES):
            # Every job refused its existing dir (each said why): this multirun made nothing, so it changes
            # nothing either (no merge, Hydra's multirun.yaml and the refusal records put back as they were).
            _restore(sweep_dir, _ACTIVE.get("before") or {})
            log.info(f"nothing changed in {sweep_dir}: every job was refused (see the lines above)")
            EXIT["code"] = max(EXIT["code"], 2)
            return
        options = OmegaConf.select(config, "report", default=None) or {}
        try:
            merged = merge(sweep_dir, dict(options))
        except Exception as exc:  # the jobs' own results stay; say what went wrong, exit non-zero
            log.exception("multirun merge failed")
            merged = Merged(sweep_dir, [], errors=[f"merge: {type(exc).__name__}: {exc}"])
        for line in merged.lines():
            log.info(line)

        # Jobs in other processes (submitit) cannot set the exit code of this one: their status files do.
        EXIT["code"] = max(EXIT["code"], merged.exit_code)


def _snapshot(sweep_dir: Path) -> dict[str, tuple[bytes, int, int] | None]:
    """What a refused multirun may touch in an existing sweep dir, before it starts: Hydra's multirun.yaml and
    the refusal records (bytes, atime, mtime; None: absent)."""
    from sweep.cli.app import REFUSED

    found: dict[str, tuple[bytes, int, int] | None] = {"multirun.yaml": None, REFUSED: None}
    for path in [sweep_dir / "multirun.yaml", *sorted((sweep_dir / REFUSED).glob("job*.json"))]:
        try:
            info = path.stat()
            found[str(path.relative_to(sweep_dir))] = (path.read_bytes(), info.st_atime_ns, info.st_mtime_ns)
        except OSError:
            pass
    if (sweep_dir / REFUSED).is_dir():
        found[REFUSED] = (b"", 0, 0)
    return found


def _restore(sweep_dir: Path, before: dict[str, tuple[bytes, int, int] | None]) -> None:
    """Put the files `_snapshot` saw back as they were (and remove the ones it did not see)."""
    from sweep.cli.app import REFUSED

    for path in sorted((sweep_dir / REFUSED).glob("job*.json")):
        if str(path.relative_to(sweep_dir)) not in before:
            path.unlink(missing_ok=True)
    for name, saved in before.items():
        path = sweep_dir / name
        if name == REFUSED:
            if saved is None and path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            continue
        if saved is None:
            if name == "multirun.yaml" and not (sweep_dir / JOBS).exists():
                continue  # a new sweep dir: Hydra's own file stays
            path.unlink(missing_ok=True)
            continue
        data, atime, mtime = saved
        if not path.is_file() or path.read_bytes() != data:
            from sweep.atomic import atomic_write

            atomic_write(path, data)
        os.utime(path, ns=(atime, mtime))


def estimate(config: Any) -> str:
    """The whole multirun's work, before its first job: jobs, images, denoising steps (each job's grid composed
    and planned as the job will, without a model)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import open_dict

    from sweep.planning.plan import plan_sweep
    from sweep.planning.schema import typed

    try:
        parsed = OverridesParser.create().parse_overrides([str(o) for o in config.hydra.overrides.task])
        (jobs,) = BasicSweeper.split_arguments(parsed, None)
        loader = GlobalHydra.instance().config_loader()
    except Exception:  # another sweeper's syntax: the jobs still run, only the estimate is skipped
        return "multirun: starting"
    images = steps = unknown = 0
    for overrides in jobs:
        try:
            job = loader.load_sweep_config(config, list(overrides))
            with open_dict(job):
                job.pop("hydra")  # the job's run dir and the like resolve only inside the job
            plan = plan_sweep(typed(job), multirun=True)  # the edge: the composed job becomes the typed config
        except Exception:  # bad input: the job itself reports it, in one line
            unknown += 1
            continue
        images += len(plan.cells)
        steps += sum(c.call().steps for c in plan.cells)
    bad = f" ({unknown} with bad input)" if unknown else ""
    return f"multirun: {len(jobs)} jobs{bad}, {images} images, {steps} denoising steps in all"


def _sweeps_several(config: Any) -> bool:
    """`-m sweep=a,b` (or sweep=glob(*), choice(...)): the `sweep` group itself is swept."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides([str(o) for o in config.hydra.overrides.task])
    return any(o.key_or_group == "sweep" and o.is_sweep_override() for o in overrides)


def _quote(text: str) -> str:
    """`text` as a Hydra override value: quoted, with quotes and the backslashes before them escaped."""
    return "'" + re.sub(r"(\\*)('|\Z)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text) + "'"


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job dirs of a multirun sweep dir (each holds .hydra/overrides.yaml), never the dir itself."""
    return [p.parent.parent for p in sorted(sweep_dir.glob("**/.hydra/overrides.yaml")) if p.parent.parent != sweep_dir]


def check_sweep_dir(sweep_dir: Path) -> None:
    """Refuse (without writing) anything that is not a multirun sweep dir: a run dir, a job dir, an empty or
    unrelated folder would otherwise get its results.csv replaced by a merge of nothing."""
    from sweep.errors import RunDirError

    shown = str(sweep_dir)
    if not sweep_dir.is_dir():
        raise RunDirError(f"SWEEP_DIR: got '{shown}'; allowed: an existing multirun sweep directory")
    if (sweep_dir / ".hydra").is_dir() or (sweep_dir / "sweep.json").is_file():
        raise RunDirError(f"SWEEP_DIR: got '{shown}', which is a single run (or one job of a multirun); allowed: "
                          "the multirun's sweep directory, the folder holding the numbered job folders")
    if not job_dirs(sweep_dir):
        raise RunDirError(f"SWEEP_DIR: got '{shown}', which holds no multirun jobs (no */.hydra/overrides.yaml); "
                          "allowed: the multirun's sweep directory (hydra.sweep.dir)")


def merge(sweep_dir: Path, report: dict[str, Any] | None = None) -> Merged:
    """Merge the job dirs under sweep_dir and build the comparison report. Raises only on I/O trouble."""
    from sweep.rundir.results import RESULTS, atomic_write

    jobs = [read_job(path) for path in job_dirs(sweep_dir)]
    jobs = _with_refusals(jobs, _refused_jobs(sweep_dir))
    swept = swept_keys(jobs)
    rows, columns = merged_rows(sweep_dir, jobs, swept)
    atomic_write(sweep_dir / RESULTS, _csv(rows, columns))
    atomic_write(sweep_dir / JOBS, _csv([_job_row(sweep_dir, j) for j in jobs], JOB_COLUMNS))
    merged = Merged(sweep_dir, jobs, rows=len(rows), swept=swept)
    if rows:
        _report(merged, rows, report or {})
    status = {"jobs": len(jobs), "images": merged.rows, "swept": swept,
              "failed_jobs": [{"job": j.num, "status": j.status, "error": j.error} for j in jobs
                              if j.status != "ok"],
              "layouts": merged.layouts, "sheets": [str(p.relative_to(sweep_dir)) for p in merged.sheets],
              "errors": merged.errors}
    atomic_write(sweep_dir / "status.json", json.dumps(status, indent=2) + "\n")
    return merged


def read_job(job_dir: Path) -> Job:
    """One job's overrides, rows and outcome, from what it left in its run dir."""
    from omegaconf import OmegaConf

    from sweep.rundir.results import RESULTS, read_rows

    overrides = [str(o) for o in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")]
    num = _job_num(job_dir)
    rows = read_rows(job_dir / RESULTS)
    layout = {}
    manifest = _json(job_dir / "sweep.json")
    if isinstance(manifest.get("sweep"), dict) and isinstance(manifest["sweep"].get("layout"), dict):
        layout = {**manifest["sweep"]["layout"], "sweep": manifest["sweep"].get("name")}
    status = _json(job_dir / "status.json")
    return Job(num, job_dir, overrides, rows, *_outcome(status), layout=layout,
               slurm_job=str(status.get("slurm_job") or ""))


def _outcome(status: dict[str, Any]) -> tuple[str, str, int]:
    """A job's status, error and exit code from its status.json (none: the job did not finish)."""
    errors = [str(e) for e in status.get("errors") or []]
    if not status:
        return "incomplete", "no status.json: the job did not finish", 1
    if "total" not in status:  # written by the CLI for a job that stopped before generating
        return "error", "; ".join(errors), int(status.get("exit_code", 2))
    failed = int(status.get("failed") or 0)
    if failed or errors:
        return "failed", "; ".join(errors + ([f"{failed} image(s) failed"] if failed else [])), 1
    return "ok", "", 0


def _with_refusals(jobs: list[Job], refused: list[Job]) -> list[Job]:
    """One entry per job: a refusal of a job whose dir holds an earlier run becomes that job's status and error
    (its earlier images stay in the table), instead of a second row for the same job."""
    by_num = {job.num: job for job in jobs}
    for job in refused:
        earlier = by_num.get(job.num)
        if earlier is None or job.num < 0:
            jobs.append(job)
            continue
        earlier.status, earlier.error, earlier.exit_code = job.status, job.error, job.exit_code
    return sorted(jobs, key=lambda j: j.num)


def _refused_jobs(sweep_dir: Path) -> list[Job]:
    """Jobs that refused an existing job dir (another experiment in it) and so wrote their error here."""
    from sweep.cli.app import REFUSED

    found = []
    for path in sorted((sweep_dir / REFUSED).glob("job*.json")):
        data = _json(path)
        found.append(Job(int(data.get("num", -1)) if str(data.get("num", "")).lstrip("-").isdigit() else -1,
                         path.parent, [str(o) for o in data.get("overrides") or []], [], "error",
                         "; ".join(str(e) for e in data.get("errors") or []), int(data.get("exit_code", 2)),
                         slurm_job=str(data.get("slurm_job") or "")))
    return found


def _job_num(job_dir: Path) -> int:
    from omegaconf import OmegaConf

    try:
        return int(OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra.job.num)
    except Exception:
        return int(job_dir.name) if job_dir.name.isdigit() else -1


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs: what the command line swept."""
    per_job = [dict(_split(o) for o in job.overrides) for job in jobs]
    keys = dict.fromkeys(key for values in per_job for key in values)
    return [key for key in keys if len({values.get(key, "\0unset") for values in per_job}) > 1]


def column_for(key: str, columns: list[str]) -> str | None:
    """The results.csv column (or the report's derived `resolution`) that shows an override key's value:
    `guidance_scale` and `sweep.grid.guidance_scale` -> guidance_scale, `height` -> resolution."""
    from sweep import axes

    if key in KEY_COLUMNS:
        return KEY_COLUMNS[key]
    for name in (key, key.rsplit(".", 1)[-1]):
        axis = axes.axis_of_column(name)
        if axis is not None:
            return axis.name if axis.name in columns or axis.name == "resolution" else axis.cols[0]
        if name in columns:
            return name
    return None


def merged_rows(sweep_dir: Path, jobs: list[Job], swept: list[str]) -> tuple[list[dict[str, str]], list[str]]:
    from sweep.rundir.results import COLUMNS

    extra = [k for k in swept if column_for(k, COLUMNS) is None]
    found = [k for job in jobs for row in job.rows for k in row]  # a job's own axes (pipeline arguments)
    columns = list(dict.fromkeys(["job", *COLUMNS, *found, "overrides", *extra]))
    rows = []
    for job in jobs:
        values = dict(_split(o) for o in job.overrides)
        prefix = job.dir.relative_to(sweep_dir).as_posix()
        for row in job.rows:
            merged = {"job": str(job.num), **row, "overrides": " ".join(job.overrides)}
            if row.get("image"):
                merged["image"] = f"{prefix}/{row['image']}"  # paths relative to the sweep dir
            merged.update({k: values.get(k, "") for k in extra})
            rows.append(merged)
    return rows, columns


def _job_row(sweep_dir: Path, job: Job) -> dict[str, Any]:
    return {"job": job.num, "status": job.status, "images": len(job.rows),
            "ok": sum(r.get("status") == "ok" for r in job.rows),
            "failed": sum(r.get("status") != "ok" for r in job.rows), "error": job.error,
            "dir": job.dir.relative_to(sweep_dir).as_posix(), "overrides": " ".join(job.overrides),
            "slurm_job": job.slurm_job}


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# --- the comparison report -------------------------------------------------------------------------------


def merged_layout(merged: Merged, rows: list[dict[str, str]]) -> dict[str, str | None]:
    """The jobs' own layout, with every key swept on the command line put on rows or columns.

    Several sweeps (`-m sweep=a,b`) are left to the report, which gives each sweep its own sheets.
    """
    from sweep.report.layout import ALIASES

    columns = list(rows[0])
    ok = [r for r in rows if r.get("status") == "ok"] or rows

    def varies(axis: str) -> bool:
        if axis == "resolution":
            return len({(r.get("height"), r.get("width")) for r in ok}) > 1
        return axis in columns and len({r.get(axis) for r in ok}) > 1

    swept = [c for c in dict.fromkeys(column_for(k, columns) for k in merged.swept) if c and varies(c)]
    several_sweeps = varies("sweep")
    hints = {json.dumps(j.layout, sort_keys=True) for j in merged.jobs if j.rows}
    hint = json.loads(hints.pop()) if len(hints) == 1 and not several_sweeps else {}
    slots: dict[str, list[str]] = {s: [] for s in SLOTS}
    for slot in SLOTS:
        axis = ALIASES.get(str(hint.get(slot)).lower(), hint.get(slot))
        if axis and varies(axis):
            slots[slot].append(axis)
    for axis in swept:
        if axis == "sweep" or any(axis in axes for axes in slots.values()):
            continue  # the report splits sweeps itself; an axis of the sweep's own layout keeps its place
        if not slots["rows"]:
            slots["rows"].append(axis)
        elif not slots["cols"]:
            slots["cols"].append(axis)
        else:
            slots["rows"].insert(0, axis)  # outer label: rows read "swept value, sweep-axis value"
    return {slot: ",".join(axes) if axes else None for slot, axes in slots.items()}


def _report(merged: Merged, rows: list[dict[str, str]], options: dict[str, Any]) -> None:
    from sweep.report import build_report

    layout = merged_layout(merged, rows)
    try:
        result = build_report(merged.sweep_dir, **layout, cell_max=int(options.get("cell_max", 512)),
                              max_cells=int(options.get("max_cells", 64)),
                              captions=bool(options.get("captions", True)),
                              reference=options.get("reference"))  # scores: the jobs' (sweep.report.scores)
    except Exception as exc:  # the merged table is written; a report error is recorded, not fatal
        log.exception("merged report failed")
        merged.errors.append(f"report: {type(exc).__name__}: {exc}")
        return
    merged.layouts = [layout_.describe() for layout_ in result.layouts]
    merged.sheets = list(result.sheets)
    merged.sheet_note = result.sheet_note
    merged.viewer = result.viewer
    merged.insights = list(result.insights)


def is_launcher_error(exc: BaseException) -> bool:
    """submitit's own errors: a job it launched did not finish (scancel, a node failure, a time limit)."""
    return type(exc).__module__.startswith("submitit")


def after_launcher_error(exc: BaseException) -> int:
    """The launcher gave up on a job (submitit raises for the first job without a result, while the others may
    still run): one line for that job, wait for the rest of its SLURM array, merge what every job made."""
    import subprocess
    import time

    text = str(exc)
    found = re.search(r"Job (\S+) .*?\(state: ([^)]*)\)", text, re.S)
    job, state = (found.group(1), found.group(2)) if found else ("", text.strip().splitlines()[0] if text else "")
    sweep_dir = _ACTIVE.get("sweep_dir")
    where = f"; merge again with `python -m sweep.cli.multirun {sweep_dir}`" if sweep_dir else ""
    print(f"error: SLURM job {job or '?'} did not finish ({state}); what it made is kept: run the same command to "
          f"resume it{where}", file=sys.stderr, flush=True)
    if sweep_dir is None:
        return 1
    array = job.split("_")[0]
    try:
        while array and shutil.which("squeue"):
            queued = subprocess.run(["squeue", "-h", "-j", array, "-o", "%i"], capture_output=True, text=True)
            if queued.returncode != 0 or not queued.stdout.strip():
                break
            time.sleep(5)
    except KeyboardInterrupt:
        print("interrupted: stopped waiting for the other jobs; they go on", file=sys.stderr, flush=True)
        return 130
    merged = merge(sweep_dir, _ACTIVE.get("report"))
    for line in merged.lines():
        log.info(line)
    return max(1, merged.exit_code)


def _remove_if_empty(sweep_dir: Path) -> None:
    """A non-main rank's own sweep dir holds only Hydra's multirun.yaml once its job dirs are gone."""
    if sweep_dir.is_dir() and all(p.name == "multirun.yaml" for p in sweep_dir.iterdir()):
        shutil.rmtree(sweep_dir, ignore_errors=True)
        try:
            sweep_dir.parent.rmdir()
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    """`python -m sweep.cli.multirun SWEEP_DIR`: merge a finished (or partly finished) multirun again."""
    from sweep.cli.commands import run_command

    return run_command(argv, MAIN_DOC, _merge_command, hint="the jobs' results are kept: run the same command "
                       "to merge again")


MAIN_DOC = "python -m sweep.cli.multirun SWEEP_DIR: merge a finished (or partly finished) multirun again"


def _merge_command(args: list[str]) -> int:
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m sweep.cli.multirun SWEEP_DIR  (the multirun's hydra.sweep.dir)", file=sys.stderr)
        return 2
    check_sweep_dir(Path(args[0]))
    from sweep.rundir.guard import check_links
    from sweep.safe_log import EscapingFormatter, escape_controls

    check_links(Path(args[0]), "SWEEP_DIR")  # the merge writes nothing through a link
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    merged = merge(Path(args[0]).resolve())
    for line in merged.lines():
        print(escape_controls(line))
    return merged.exit_code


if __name__ == "__main__":
    sys.exit(main())
