"""Run a sweep: config -> checked plan of cells -> one shared pipeline -> images + results.csv -> report.

Plain functions, no Hydra: `run_sweep(cfg, run_dir)` is what the CLI calls and what tests call. Before the
model loads, the plan is checked, the run directory is classified and locked, and a directory holding another
experiment is refused; nothing in it is touched until the run is accepted.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweep import axes, grid
from sweep.distributed import Ranks, ranks_for, scheduler_job
from sweep.errors import SweepError, disk_error
from sweep.grid import Cell
from sweep.plan import Plan, describe, plan_sweep
from sweep.report.result import sheet_lines
from sweep.results import DIGEST, IMAGES, ResultsTable, atomic_write, columns_for, file_digest
from sweep.signals import Interrupted, Stop, stop_on_signals

log = logging.getLogger(__name__)
# Errors of the disk, not of a cell: stop at once (every further write would fail too), resume later.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


class StorageError(SweepError):
    """The disk refused a write (full, read-only, gone): the run stops; what was written is kept."""

    exit_code = 1


@dataclass
class RunSummary:
    name: str
    run_dir: Path
    total: int = 0
    made: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    sheets: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # further report lines (the page, insights)
    sheet_note: str = ""  # which sheets a large sweep got (the viewer has every image)
    errors: list[str] = field(default_factory=list)
    moved_aside: Path | None = None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors

    def lines(self) -> list[str]:
        # On a CPU several calls share the cores: the total over the images is the throughput that counts.
        per_image = f" ({self.seconds / self.made:.2f} s per image, wall time / images made)" if self.made else ""
        out = [
            f"{self.name}: {self.made} made, {self.skipped} skipped (already done), {self.failed} failed "
            f"of {self.total} images in {self.seconds:.1f} s{per_image}",
            f"results: {self.run_dir / 'results.csv'}",
        ]
        out += sheet_lines(self.sheets, None, self.sheet_note)  # the viewer is among the report's lines
        out += [f"plot:    {path}" for path in self.plots]
        out += self.extra
        out += [f"error:   {error}" for error in self.errors]
        if self.failed:
            out.append(f"FAILED: {self.failed} image(s) failed; see the 'error' column of results.csv")
        return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict from a DictConfig, a dataclass or a dict (tests pass any of them)."""
    from omegaconf import OmegaConf

    if isinstance(cfg, dict):
        return cfg
    return OmegaConf.to_container(OmegaConf.structured(cfg) if not OmegaConf.is_config(cfg) else cfg,
                                  resolve=True)


# --- the experiment a run dir holds -----------------------------------------------------------------------


def model_identity(model: Mapping[str, Any], swept_models: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    from sweep.pipeline import resolved_dtype_name

    identity = {k: model.get(k) for k in ("source", "id", "path", "config", "variant")}
    # Model files loaded with the pipeline change the pixels; recorded only when set (older manifests lack them).
    identity.update({k: model[k] for k in ("vae", "lora", "refiner") if model.get(k)})
    identity["dtype"] = resolved_dtype_name(model)
    for name in swept_models:  # an axis says what is loaded for each cell: the model config's own is not used
        for key in ("source", "id", "path") if name == "checkpoint" else (name,):
            identity.pop(key, None)
        identity[f"{name}_axis"] = True
    return identity


def weights(model: Mapping[str, Any], swept_models: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """The SHA-256 of each local model file or folder the run loads (model.path, model.vae, model.refiner,
    each LoRA): other weights copied over a file or into a folder under the same name are another experiment.
    Hub ids are left out (a hub revision does not change under a name), and so is what a model axis replaces."""
    from sweep import checkpoints
    from sweep.lora import parse

    found = {}
    replaced = {"checkpoint": "path"}
    for key in ("path", "vae", "refiner"):
        value = model.get(key)
        if any(replaced.get(name, name) == key for name in swept_models):
            continue
        if value and checkpoints.expand(str(value)).exists():
            found[f"model.{key}"] = checkpoints.weights_digest(str(value))
    for name, path in parse(model.get("lora"), allow_pickle=bool(model.get("allow_pickle"))):
        found[f"model.lora.{name}"] = checkpoints.weights_digest(path)
    return found


def made_with(model: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    """How the images are made, as each row records it (compared on resume, used to adopt orphan images)."""
    from sweep.pipeline import model_label, options_label, resolved_dtype_name

    made = {"model": model_label(model), "dtype": resolved_dtype_name(model), "options": options_label(model),
            "generator_device": plan.generator_device}
    if "checkpoint" in plan.model_axes:
        del made["model"]  # each cell's checkpoint is a parameter column, compared with the others
    return made


def manifest_for(plan: Plan, cells: list[Cell], model: Mapping[str, Any], facts: axes.Facts) -> dict[str, Any]:
    return {
        "sdxl_sweep": 2,
        "sweep": {"name": plan.name, "layout": plan.layout, "grid": plan.grid_spec},
        "model": model_identity(model, plan.model_axes),
        "weights": weights(model, plan.model_axes),
        "made_with": {**made_with(model, plan), "batch_size": plan.batch_size},
        "random_seeds": plan.random_seeds,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "expected_cells": [
            {**c.record(facts), "image": f"{IMAGES}/{c.cell_id}.png", "sweep": plan.name} for c in cells
        ],
    }


@dataclass
class Accepted:
    """What the main rank decided before generating, shared with the other ranks."""

    cells: list[Cell]
    done: set[str]
    seeds: list[int] | None
    moved_aside: Path | None = None


def _recorded_seeds(run_dir: Path, restart: bool, shared: Path | None, grid_spec: Any) -> list[int] | None:
    """Random seeds drawn earlier for this directory (or this multirun), so a resume or another job of the
    multirun uses the same ones."""
    from sweep.results import recorded_experiment

    if not restart:
        recorded = recorded_experiment(run_dir)
        if recorded and recorded.get("random_seeds"):
            return list(recorded["random_seeds"])
    if shared is not None:
        from sweep.shared_seeds import read_seeds

        return read_seeds(shared, grid_spec)
    return None


def accept(cfg: Mapping[str, Any], run_dir: Path, plan: Plan, facts: axes.Facts, lock: Any,
           on_accept: Callable[[], None] | None, echo: Callable[[str], None],
           job: Mapping[str, Any] | None = None, shared_dir: Path | None = None) -> Accepted:
    """Main rank, lock held: refuse another experiment, or take the directory (nothing is written before).
    `job` (num, overrides) and `shared_dir`: a multirun job and its sweep dir."""
    from sweep import rundir
    from sweep.atomic import remove_stale_temp_files
    from sweep.report import OUTPUTS
    from sweep.results import check_same_experiment, parse_table, write_manifest

    model = cfg["model"]
    cells = plan.resolved(facts)
    manifest = manifest_for(plan, cells, model, facts)
    table = ResultsTable(run_dir, columns_for(plan.extra_axes))
    expected = {c.cell_id: rec for c, rec in zip(cells, manifest["expected_cells"], strict=True)}
    moved, parsed = None, None
    if cfg.get("restart"):
        moved = rundir.move_aside(run_dir, OUTPUTS)
        if moved:
            echo(f"restart=true: moved the earlier results to {moved}")
    else:
        parsed = parse_table(table.path)  # random bytes: refused before an experiment is read from the rows
        check_same_experiment(run_dir, manifest, grow=bool(cfg.get("grow")))
        if job is not None:
            rundir.check_job(run_dir, shared_dir, list(job.get("overrides") or []), job.get("num"))
    found = table.inspect(expected, parsed)  # a hand-edited table: refused, nothing written
    # Accepted: from here on the directory is this run's.
    run_dir.mkdir(parents=True, exist_ok=True)
    if on_accept is not None:
        on_accept()
    lock.record_holder()
    remove_stale_temp_files([run_dir, *(run_dir / name for name in (IMAGES, *OUTPUTS))])
    (run_dir / IMAGES).mkdir(parents=True, exist_ok=True)
    prepared = table.prepare(found, expected, made_with(model, plan))
    if prepared.set_aside:
        echo(f"{len(prepared.set_aside)} image(s) in {run_dir / IMAGES} were not the ones this run wrote "
             f"(changed, undecodable or one flat colour): moved to {prepared.moved_to}, made again")
    write_manifest(run_dir, manifest)
    done = prepared.done
    return Accepted(cells, done, plan.random_seeds, moved)


# --- run -------------------------------------------------------------------------------------------------


def run_sweep(cfg: Any, run_dir: Path, **options: Any) -> RunSummary:
    """Generate every missing cell of the sweep into run_dir, then write the report (`_run_sweep`). What the
    libraries log or warn meanwhile goes once each to the run's sweep.log, not to the terminal."""
    from sweep.library_output import to_log

    with to_log(Path(run_dir)):
        return _run_sweep(cfg, run_dir, **options)


def _run_sweep(
    cfg: Any,
    run_dir: Path,
    *,
    ranks: Ranks | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    multirun: bool = False,
    shared_dir: Path | None = None,
    on_accept: Callable[[], None] | None = None,
    job: Mapping[str, Any] | None = None,
) -> RunSummary:
    """Generate every missing cell of the sweep into run_dir, then write the report. Raises SweepError.

    `shared_dir`: a multirun's sweep dir, where random seeds are kept for all its jobs. `on_accept`: called
    once the directory is accepted, before anything is written into it (the CLI saves Hydra's config files).
    `job`: a multirun job's number and overrides (its dir must not hold another job's values).
    """
    from sweep import model_facts, rundir

    cfg = to_dict(cfg)
    run_dir = Path(run_dir)
    model_cfg = cfg["model"]
    ranks = ranks or ranks_for(cfg)
    grid_spec = dict((cfg.get("sweep") or {}).get("grid") or {})
    seeds = None
    if ranks.is_main:
        seeds = _recorded_seeds(run_dir, bool(cfg.get("restart")), shared_dir, grid_spec)
    seeds = ranks.share(seeds)
    # Bad input first, before anything heavy is imported; bounds only the model's config knows (steps, clip
    # skip) are checked again by plan.resolved once the facts are read.
    plan = plan_sweep(cfg, seeds, multirun=multirun)
    if shared_dir is not None and plan.random_seeds and ranks.is_main:
        from sweep.shared_seeds import keep_seeds

        plan = plan_sweep(cfg, keep_seeds(shared_dir, grid_spec, plan.random_seeds), multirun=multirun)
    facts = _model_facts(plan, model_cfg)
    from sweep import memory, pipeline  # torch: only once the input is known to be good
    from sweep.devices import resolve_device, resolve_dtype

    # Before the directory is touched or the model loads: a size whose image no device memory holds.
    target = resolve_device(str(model_cfg.get("device", "auto")))
    memory.check(plan, facts, target, model_cfg,
                 str(resolve_dtype(str(model_cfg.get("dtype", "auto")), target)).removeprefix("torch."))

    lock = rundir.RunLock(run_dir)

    def take_dir(facts: axes.Facts | None) -> Accepted | None:
        rundir.classify(run_dir)
        if lock.handle is None:
            lock.acquire()
        if facts is None:
            return None
        return accept(cfg, run_dir, plan, facts, lock, on_accept, echo, job if multirun else None, shared_dir)

    try:
        accepted = _main_decides(ranks, lambda: take_dir(facts))
        if ranks.is_main:
            todo = len(accepted.cells) - len(accepted.done) if accepted else None
            echo(describe(plan, _model_name(plan, model_cfg), todo) + f" -> {run_dir}")
        device = ranks.device(resolve_device(str(model_cfg.get("device", "auto"))))
        if plan.model_axes:  # loaded per checkpoint / VAE, one at a time, in _generate_all
            return _generate_all(cfg, run_dir, plan, accepted, None, facts, ranks, progress, echo, device)
        loaded = pipeline.load({**model_cfg, "device": device})
        if facts is None:  # config files were not readable before the load: check now, before any image
            facts = _with_model_files(model_facts.from_pipeline(loaded.pipe), model_cfg)
            accepted = _main_decides(ranks, lambda: take_dir(facts))
        return _generate_all(cfg, run_dir, plan, accepted, loaded, facts, ranks, progress, echo, device)
    finally:
        lock.release()


def _model_name(plan: Plan, model: Mapping[str, Any]) -> str:
    from sweep import pipeline

    if "checkpoint" in plan.model_axes:
        return "per cell (" + ", ".join(axes.file_label(v) for v in plan.swept_values("checkpoint")) + ")"
    return pipeline.model_label(model)


def _model_facts(plan: Plan, model: Mapping[str, Any]) -> axes.Facts | axes.PerModel | None:
    """The facts of the model config, or with a checkpoint / VAE axis those of each model a cell uses (read
    from config files, before anything loads)."""
    from sweep import model_facts
    from sweep.model_axes import model_config

    if not plan.model_axes:
        return _with_model_files(model_facts.peek(model), model)
    per = axes.PerModel()
    for cell in plan.cells:
        key = axes.model_key(cell)
        if key not in per:
            own = model_config(model, dict(key))
            # A single file without model.config: diffusers reads SDXL base's configs for it.
            per[key] = _with_model_files(model_facts.peek(own) or model_facts.peek({"source": "sdxl_arch"}), own)
    return per


def _main_decides(ranks: Ranks, decide: Callable[[], Any]) -> Any:
    """Run `decide` on the main rank only; its result, or the SweepError it raised, reaches every rank (the
    others stop too instead of waiting forever)."""
    result, refused = None, None
    if ranks.is_main:
        try:
            result = decide()
        except SweepError as exc:
            refused = exc
    result, refused = ranks.share((result, refused))
    if refused:
        raise refused
    return result


def _with_model_files(facts: axes.Facts | None, model: Mapping[str, Any]) -> axes.Facts | None:
    """The facts plus what the model files decide: the refiner's default hand-over when one is set, the VAE's
    A1111 name when model.vae is set."""
    if facts is None:
        return facts
    from dataclasses import replace

    if model.get("vae"):
        facts = replace(facts, vae=axes.file_label(str(model["vae"]), keep_suffix=True))
    if not model.get("refiner"):
        return facts
    from sweep.refiner import DEFAULT_SWITCH

    return replace(facts, refiner_switch=DEFAULT_SWITCH)


def _generate_all(cfg: Mapping[str, Any], run_dir: Path, plan: Plan, accepted: Accepted, loaded: Any,
                  facts: axes.Facts | axes.PerModel, ranks: Ranks, progress: bool, echo: Callable[[str], None],
                  device: str) -> RunSummary:
    """Every missing cell, with `loaded`, or (loaded=None: a checkpoint / VAE axis) loading each model in turn:
    the previous one is released before the next loads, so one pipeline is in memory at a time."""
    from sweep.prompt_cache import PromptCache

    cells, done = accepted.cells, accepted.done
    summary = RunSummary(name=plan.name, run_dir=run_dir, total=len(cells), skipped=len(done),
                         moved_aside=accepted.moved_aside)
    # Batches are formed over ALL cells, so a resumed run calls the pipeline with exactly the batches of an
    # uninterrupted one (batch composition changes pixels by up to 1/255) and only writes what is missing.
    units = []
    for shape_cells in _by_shape(grid.shape_order(cells)):
        width, height = shape_cells[0].size
        size = plan.batch_size or grid.auto_batch_size(width, height, device)
        units += [u for u in grid.batches(shape_cells, size) if any(c.cell_id not in done for c in u)]
    table = ResultsTable(run_dir, columns_for(plan.extra_axes))
    threads = _threads(device, run_dir, done)
    writer = ImageWriter(run_dir, table, yield_cpu=device == "cpu")
    bar = _progress_bar(len(cells), len(done), enabled=progress and ranks.is_main)
    started = time.perf_counter()
    mine = ranks.mine(units)
    if ranks.count > 1:
        log.info("rank %d of %d: %d of %d batches", ranks.index, ranks.count, len(mine), len(units))
    try:
        with stop_on_signals() as stop:
            stop.immediate = bool(cfg["model"].get("compile"))  # a first call compiles for long before a step ends
            for key, group in _by_model(mine):
                if plan.model_axes:
                    loaded = prompts = None  # let the previous model go before the next one loads
                    loaded = _load_model(cfg["model"], key, device)
                prompts = PromptCache(loaded.pipe, loaded.device)  # per model: its own text encoders
                fixed = {**_fixed(plan, loaded), "threads": threads}
                for outcome in _execute(loaded, prompts, group, cfg, plan.generator_device, stop):
                    for cell, image, error in outcome.results:
                        if cell.cell_id in done:
                            continue
                        row = _row(cell, axes.facts_for(facts, cell), fixed, outcome, error)
                        writer.submit(row, image, cell, axes.facts_for(facts, cell))
                    bar.update(sum(c.cell_id not in done for c, _, _ in outcome.results))
                    if stop.requested:
                        break
                if stop.requested:
                    break
    finally:
        writer.close()
        bar.close()
    summary.made, summary.failed = writer.ok, writer.failed
    summary.seconds = time.perf_counter() - started
    if stop.requested:
        raise Interrupted(stop.signum, f"interrupted: {len(done) + writer.ok} of {len(cells)} images in "
                          f"{run_dir}; run the same command to resume")
    _gather(summary, ranks)
    ranks.wait()
    if ranks.is_main:
        _finish(summary, run_dir, cfg)
    return summary


def _fixed(plan: Plan, loaded: Any) -> dict[str, Any]:
    """The row fields one loaded model gives every image it makes."""
    from sweep.metadata import environment

    return {"sweep": plan.name, "model": loaded.label,
            **loaded.record(),  # model_hash, vae, vae_hash, lora, lora_hashes, refiner, refiner_switch
            **environment(loaded.device, loaded.dtype), "options": loaded.options,
            "generator_device": plan.generator_device}


def _by_model(units: list[list[Cell]]) -> list[tuple[tuple, list[list[Cell]]]]:
    """Units grouped by what they load (checkpoint, VAE), in order (shape_order puts each model's together)."""
    groups: dict[tuple, list[list[Cell]]] = {}
    for unit in units:
        groups.setdefault(axes.model_key(unit[0]), []).append(unit)
    return list(groups.items())


def _load_model(model: Mapping[str, Any], key: tuple, device: str) -> Any:
    """The pipeline for one checkpoint / VAE of the axes (pipeline.load releases the previous one first)."""
    from sweep import pipeline
    from sweep.model_axes import model_config

    return pipeline.load({**model_config(model, dict(key)), "device": device})


def _threads(device: str, run_dir: Path, done: set[str]) -> int:
    """torch's thread count for this run (sweep.cpu_threads on a CPU: fewer on cores other processes keep busy;
    a resume keeps the count its images were made with)."""
    import torch

    if device != "cpu":
        return torch.get_num_threads()
    from sweep.cpu_threads import settle
    from sweep.results import RESULTS, read_rows

    return settle(row.get("threads") or "" for row in read_rows(run_dir / RESULTS)
                  if row.get("status") == "ok" and row.get("cell_id") in done)


def _by_shape(cells: list[Cell]) -> list[list[Cell]]:
    groups: dict[tuple[int, int] | None, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.size, []).append(cell)
    return list(groups.values())


# --- writing ---------------------------------------------------------------------------------------------


class ImageWriter:
    """PNG encoding and writing on threads, off the generation loop; bounded so memory stays flat.

    `threads` writers take images from one queue (Pillow's PNG encoder releases the GIL while it filters and
    deflates, so two encode on two cores): a fast GPU is not held up by a writer that falls behind, and the
    images waiting at the end of the sweep are written sooner. Rows are appended in the order images were
    submitted (a rerun's results.csv lists its rows in the same order), each as soon as its image and those
    before it are on disk. A cell whose image cannot be encoded or written becomes a failed row with the error,
    and the other cells still land; a full or read-only disk stops the run (StorageError on the next submit).
    """

    def __init__(self, run_dir: Path, table: ResultsTable, pending: int = 8, threads: int | None = None,
                 yield_cpu: bool = True) -> None:
        self.run_dir = run_dir
        self.yield_cpu = yield_cpu  # the pipeline computes on the CPU: write at a lower priority
        self.table = table
        self.queue: queue.Queue = queue.Queue(maxsize=pending)
        self.fatal: BaseException | None = None
        self.ok = 0
        self.failed = 0
        self._submitted = 0
        self._next_row = 0  # the submission number whose row is appended next
        self._turn = threading.Condition()
        self.threads = [threading.Thread(target=self._loop, name=f"png-writer-{i}", daemon=True)
                        for i in range(threads or writer_threads())]
        for thread in self.threads:
            thread.start()

    def submit(self, row: dict[str, Any], image: Any | None, cell: Cell, facts: axes.Facts) -> None:
        if self.fatal is not None:
            raise self.fatal
        self.queue.put((self._submitted, row, image, cell, facts))
        self._submitted += 1

    def _loop(self) -> None:
        if self.yield_cpu:
            _yield_to_pipeline()
        while (item := self.queue.get()) is not None:
            number, *work = item
            row = self._write(*work) if self.fatal is None else None
            with self._turn:
                self._turn.wait_for(lambda n=number: self._next_row == n)
                try:
                    if row is not None and self.fatal is None:
                        self._append(row)
                finally:
                    self._next_row += 1
                    self._turn.notify_all()

    def _write(self, row: dict[str, Any], image: Any | None, cell: Cell, facts: axes.Facts) -> dict | None:
        """Write the cell's PNG; returns its row (failed if the image could not be made), None on a disk error."""
        from sweep.metadata import a1111_parameters, comfy_prompt, png_bytes
        from sweep.pixels import NAN_ERROR, NAN_ERROR_FP32

        try:
            picture, why = image.to_image() if image is not None else (None, None)
            if why == NAN_ERROR and row.get("dtype") == "float32":
                why = NAN_ERROR_FP32  # "try float32" would send a float32 run round in a circle
            if why:
                return _failed(row, why)
            if picture is not None:
                # Image first, row second: a row always points at a complete PNG, and records its digest, so
                # a resume keeps the image only while it is still these bytes.
                data = png_bytes(picture, row, a1111_parameters(cell, row, facts), comfy_prompt(cell, row, facts))
                atomic_write(self.run_dir / row["image"], data)
                row = {**row, DIGEST: file_digest(data)}
            return row
        except OSError as exc:
            if exc.errno in DISK_ERRORS:
                self.fatal = StorageError(f"{self.run_dir / row['image']}: could not write ({exc.strerror}); "
                                          "free space or fix the disk, then run the same command to resume")
                return None
            return _failed(row, f"could not write the image: {exc}")
        except Exception as exc:  # encoding failed (bad metadata): this cell fails, the others go on
            return _failed(row, f"could not write the image: {type(exc).__name__}: {exc}")

    def _append(self, row: dict[str, Any]) -> None:
        try:
            self.table.append(row)
        except OSError as exc:
            self.fatal = StorageError(f"{self.table.path}: could not append a row ({exc.strerror}); free space "
                                      "or fix the disk, then run the same command to resume")
            return
        if row["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        if self.fatal is not None:
            raise self.fatal


def writer_threads() -> int:
    """Two PNG writers where two cores are ours, else one."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 2 if cores >= 2 else 1


def _failed(row: dict[str, Any], error: str) -> dict[str, Any]:
    return {**row, "status": "failed", "error": error[:300], "image": ""}


def _yield_to_pipeline() -> None:
    """Lower this thread's CPU priority (Linux, where nice is per thread): PNG encoding fills the gaps.

    torch's OpenMP threads wait for each other at every op, so a writer that takes a core from one of them for a
    moment stalls all of them for longer than it runs; at a lower priority it runs when a core is free instead.
    The bounded queue keeps it from falling behind for long: a full queue makes the pipeline wait for it.
    Only for CPU pipelines: on a GPU the pipeline's thread mostly waits for the device, and a writer at nice +10
    on a machine busy with other work was starved until the sweep waited seconds per image for its last PNGs
    (benchmarks/overhead.py on a loaded 2-core machine).
    """
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return  # elsewhere PRIO_PROCESS with a thread id would renice the whole process, or fail
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 10))
    except OSError:
        pass  # a sandbox may forbid it; the writer still works at normal priority


# --- generating ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One pipeline call's cells, each with its image or error, and what the call cost."""

    results: list[tuple[Cell, Any, str | None]]
    # Per image: the call's wall time divided by the calls the runner keeps in flight side by side (1 on a GPU,
    # 2 on a CPU) and by its images, i.e. what the image costs the sweep. A CPU call run beside another takes
    # about twice as long as alone, but two finish in that time: per-image seconds stay comparable across
    # cells whatever ran beside them, and their sum is about the sweep's wall time.
    seconds: float
    wall: float  # wall time of the call, as the caller waited for it


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def generate(loaded: Any, prompts: Any, unit: list[Cell], generator_device: str,
             stop: Stop | None = None) -> list[tuple[Any, str | None]]:
    """One pipeline call for cells that differ only by seed: one fresh generator per image.

    The caller has set the cells' pipeline state (LoRA strengths). Returns (pixels, None) or (None, error) per
    cell (`sweep.pixels.Pixels`: the writer thread makes the PNG; an image with NaN, as SDXL's fp16 VAE makes on
    GPUs when it overflows, or of one colour all over becomes a failed cell there, not a picture marked ok). A
    call a stop
    interrupted returns nothing. With a refiner, the base hands its latents over at the cell's refiner switch
    (SDXL's "ensemble of experts").
    """
    import torch

    from sweep import passes
    from sweep.pipeline import fork
    from sweep.pixels import from_numpy, from_output, raw_output

    first = unit[0]
    generators = [torch.Generator(device=generator_device).manual_seed(c.seed) for c in unit]
    pipe = fork(loaded.pipe, first.get("scheduler"), first.get("schedule_type"))
    width, height = first.size
    common = {**first.call_args(), "generator": generators if len(unit) > 1 else generators[0]}
    callback = stop.watch(first.num_inference_steps) if stop else None
    embeds = prompts.embeds(first.encode_args(), len(unit), first.state())
    with torch.inference_mode():
        if passes.needed(first):  # Hires. fix or image-to-image: a second pipeline over the same components
            images = passes.run(loaded, pipe, embeds, common, first, len(unit),
                                lambda steps: stop.watch(steps) if stop else None)
            if images is None:  # a stop interrupted one of the passes
                return []
            return [(pixels, None) for pixels in from_numpy(images)]
        raw_output(pipe)  # not before the passes: they decode through the fork's own image processor
        if loaded.refiner is None:
            # "pt" after raw_output: the decode as it is, on the device; sweep.pixels converts it exactly as "pil"
            # would, off this thread on the CPU, on the GPU itself there.
            output = pipe(**embeds, **common, height=height, width=width, output_type="pt",
                          callback_on_step_end=callback)
        else:
            from sweep.refiner import DEFAULT_SWITCH

            switch = first.get("refiner_switch") or DEFAULT_SWITCH
            latents = pipe(**embeds, **common, height=height, width=width, denoising_end=switch,
                           output_type="latent", callback_on_step_end=callback).images
            refiner = fork(loaded.refiner.pipe, first.get("scheduler"), first.get("schedule_type"))
            raw_output(refiner)
            output = refiner(**loaded.refiner.prompts.embeds(first.encode_args(), len(unit), first.state()),
                             **common, image=latents, denoising_start=switch, output_type="pt")
        if getattr(pipe, "_interrupt", False):
            return []
        return [(pixels, None) for pixels in from_output(output.images)]


def _execute(loaded: Any, prompts: Any, units: list[list[Cell]], cfg: Mapping[str, Any], generator_device: str,
             stop: Stop):
    """`_run_unit` over every unit: one at a time, or on the CPU side by side."""
    from sweep.pipeline import apply_state

    workers, threads = cpu_workers(loaded, cfg["model"])
    if workers > 1:
        yield from _run_parallel(loaded, prompts, units, generator_device, stop, workers, threads)
        return
    for unit in units:
        if stop.requested:
            return
        apply_state(loaded, unit[0].state())
        yield from _run_unit(loaded, prompts, unit, generator_device, stop, 1)


MAX_CPU_WORKERS = 4


def cpu_workers(loaded: Any, model: Mapping[str, Any]) -> tuple[int, int]:
    """(concurrent batched calls, torch threads of each) on the CPU; (1, 0) = one call at a time, as is.

    PyTorch splits every op over all its threads, which on small ops (small models, small images) mostly waits:
    the tiny model's UNet at 256x256 runs no faster on 2 threads than on 1. Independent pipeline calls side by
    side keep every core busy instead. Batched calls (more than one image) run on fewer threads each: their pixels
    may differ from a single call's by 1/255 anyway (diffusers #2659). A single-image call must stay exactly the
    plain `pipe(...)` call, and the thread count can change the last bit of a float, so single-image calls run
    as the plain loop runs them: on the main thread, on torch's thread count, one at a time (`_run_parallel`).
    """
    import torch

    budget = torch.get_num_threads()  # what torch would use: physical cores, or OMP_NUM_THREADS / set_num_threads
    if (loaded.device != "cpu" or budget < 2 or model.get("compile") or model.get("cpu_offload")
            # diffusers upcasts an fp16 VAE in place around each decode: not safe with calls side by side.
            or getattr(loaded.pipe.vae, "dtype", None) == torch.float16):
        return 1, 0
    workers = min(MAX_CPU_WORKERS, budget)
    return workers, budget // workers


def _cost(unit: list[Cell]) -> float:
    width, height = unit[0].size
    return len(unit) * unit[0].num_inference_steps * (1 + unit[0].cfg) * width * height


def _run_parallel(loaded: Any, prompts: Any, units: list[list[Cell]], generator_device: str, stop: Stop,
                  workers: int, threads: int):
    """Batched units on a pool of threads, then single-image units on this thread; results as they finish.

    A batched unit runs on `threads` torch threads with up to `workers` calls in flight. A single-image unit runs
    here, alone, on torch's own thread count: the plain loop's call. Not on a pool thread: libgomp gives every OS
    thread that runs a parallel region its own team, and once a process has more OpenMP threads than cores it
    stops spinning between regions (GOMP's throttled spin count), so a multi-threaded call made on a second
    thread ran 2.5-3x slower than the same call on the main thread (2 cores, tiny model at 256x256). A unit
    always runs the same way however many are left, so a resumed sweep makes the same pixels.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    import torch

    from sweep.pipeline import apply_state

    default = torch.get_num_threads()  # this thread's count, the plain call's

    def work(unit: list[Cell]) -> list[Outcome]:
        # OpenMP keeps the thread count per OS thread: set it in this one, for this unit.
        torch.set_num_threads(threads)
        return list(_run_unit(loaded, prompts, unit, generator_device, stop, workers))

    # One pipeline state (LoRA strengths) at a time, in shape order; inside it, longest first, so no core idles
    # at the end waiting for one long call (greedy LPT scheduling).
    groups: dict[tuple, list[list[Cell]]] = {}
    for unit in units:
        groups.setdefault(unit[0].state(), []).append(unit)
    with ThreadPoolExecutor(workers, thread_name_prefix="sweep-pipe") as pool:
        for state, group in groups.items():
            apply_state(loaded, state)  # nothing runs now: the previous group has finished
            todo = sorted((u for u in group if len(u) > 1), key=lambda u: -_cost(u))
            running: set = set()
            while todo or running:
                # A bounded number of calls in flight: finished images wait in no queue but the writer's.
                while todo and not stop.requested and len(running) < workers:
                    running.add(pool.submit(work, todo.pop(0)))
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield from future.result()
            for unit in (u for u in group if len(u) == 1):
                if stop.requested:
                    return
                torch.set_num_threads(default)  # also resets MKL's process-wide count the workers lowered
                yield from _run_unit(loaded, prompts, unit, generator_device, stop, 1)


def _run_unit(loaded: Any, prompts: Any, unit: list[Cell], generator_device: str, stop: Stop, slots: int):
    """Yield an Outcome for one batch; a failure never stops the sweep. `slots`: calls kept in flight."""
    started = time.perf_counter()
    try:
        results = generate(loaded, prompts, unit, generator_device, stop)
        wall = time.perf_counter() - started
        if results:  # empty: a stop interrupted the call; its cells stay missing for the resume
            yield Outcome([(c, image, error) for c, (image, error) in zip(unit, results, strict=True)],
                          wall / slots / len(unit), wall)
        return
    except Exception as exc:  # one bad cell (e.g. out of memory at one size) must not lose the others
        wall = time.perf_counter() - started
        oom = _is_oom(exc)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error = f"{type(exc).__name__}: {first_line}"[:300]
        if oom:
            _free_memory()
    if len(unit) > 1 and oom:
        # A batch that does not fit may fit one image at a time.
        log.warning("out of memory with %d images per call; retrying one at a time", len(unit))
        for cell in unit:
            yield from _run_unit(loaded, prompts, [cell], generator_device, stop, slots)
        return
    log.error("failed: %s: %s", ", ".join(c.cell_id for c in unit), error)
    yield Outcome([(c, None, error) for c in unit], wall / slots / len(unit), wall)


def _row(cell: Cell, facts: axes.Facts, fixed: Mapping[str, Any], outcome: Outcome,
         error: str | None) -> dict[str, Any]:
    return {
        **cell.record(facts),
        **fixed,
        "batch_size": len(outcome.results),
        "seconds": round(outcome.seconds, 4),
        "status": "failed" if error else "ok",
        "error": error or "",
        "image": "" if error else f"{IMAGES}/{cell.cell_id}.png",
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **machine_load(),
    }


def machine_load() -> dict[str, Any]:
    """The 1-minute load average as the row lands, and the cores: the report judges its timings by them (a
    machine busy with other work makes seconds noisy). Empty where the OS has no load average."""
    import os

    try:
        load: Any = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        load = ""
    return {"load_avg": load, "cpus": os.cpu_count() or ""}


def _progress_bar(total: int, done: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="img", desc="sweep", disable=not enabled, dynamic_ncols=True)


def _gather(summary: RunSummary, ranks: Ranks) -> None:
    """Sum the per-rank counts on every rank (the main process prints and reports them)."""
    if ranks.count == 1:
        return
    from accelerate.utils import gather_object

    parts = gather_object([(summary.made, summary.failed, summary.seconds)])
    summary.made = sum(p[0] for p in parts)
    summary.failed = sum(p[1] for p in parts)
    summary.seconds = max(p[2] for p in parts)


def _finish(summary: RunSummary, run_dir: Path, cfg: Mapping[str, Any]) -> None:
    """Report and status file, once, by the main process; a report error never loses the images."""
    import json
    import os

    from sweep import pipeline

    try:
        result = write_report(run_dir, cfg)
        summary.sheets, summary.plots = list(result.sheets), list(result.plots)
        summary.sheet_note = result.sheet_note
        summary.extra += result.lines()
    except Exception as exc:
        line = disk_error(exc)
        if line is None:
            log.exception("report failed")
        else:  # the disk, not a bug: one line, no traceback (the images are all kept)
            log.error("report failed: %s", line)
        summary.errors.append(f"report: {line or f'{type(exc).__name__}: {exc}'}")
    status = {"name": summary.name, "total": summary.total, "made": summary.made, "skipped": summary.skipped,
              "failed": summary.failed, "seconds": round(summary.seconds, 3), "errors": summary.errors,
              # A multirun's jobs in one process share one pipeline: the same pid, loads stays at 1.
              "pid": os.getpid(), "pipeline_loads": pipeline.LOADS, **scheduler_job()}
    atomic_write(run_dir / "status.json", json.dumps(status, indent=2) + "\n")


def write_report(run_dir: Path, cfg: Mapping[str, Any]) -> Any:
    """Sheets, summary table, plots, viewer and similarity metrics from the results table (sweep.report reads
    only the run dir)."""
    from sweep.report import build_report

    options = cfg.get("report") or {}
    return build_report(
        run_dir,
        cell_max=int(options.get("cell_max", 512)),
        max_cells=int(options.get("max_cells", 64)),
        captions=bool(options.get("captions", True)),
        reference=options.get("reference"),
    )
