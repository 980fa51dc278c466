"""Run a sweep: config -> checked plan of cells -> one shared pipeline -> images + results.csv -> report.

Plain functions, no Hydra: `run_sweep(settings, run_dir)` is what the CLI calls (with the checked config as a
schema.RunConfig) and what tests call. Before the
model loads, the plan is checked, the run directory is classified and locked, and a directory holding another
experiment is refused; nothing in it is touched until the run is accepted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweep import axes
from sweep.errors import SweepError, disk_error
from sweep.grid import Cell
from sweep.planning import grid
from sweep.planning.plan import Plan, describe, plan_sweep
from sweep.planning.schema import RunConfig, typed
from sweep.report.result import sheet_lines
from sweep.rundir.results import IMAGES, ResultsTable, atomic_write, columns_for
from sweep.running.distributed import Ranks, ranks_for, scheduler_job
from sweep.running.experiment import Accepted, accept, preflight, recorded_seeds, to_dict  # noqa: F401  # to_dict: tests
from sweep.running.scheduling import Outcome, execute
from sweep.running.signals import Interrupted, stop_on_signals
from sweep.running.writer import ImageWriter

log = logging.getLogger(__name__)


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
            from sweep.resume import hint_here

            out.append(f"FAILED: {self.failed} image(s) failed; see the 'error' column of results.csv; they are "
                       f"made again on resume: {hint_here(self.run_dir)}")
        return out


# --- run -------------------------------------------------------------------------------------------------


def run_sweep(settings: RunConfig | Any, run_dir: Path, **options: Any) -> RunSummary:
    """Generate every missing cell of the sweep into run_dir, then write the report (`_run_sweep`). What the
    libraries log or warn meanwhile goes once each to the run's sweep.log, not to the terminal.

    `settings`: the checked config (schema.RunConfig). A composed config or a plain mapping is still accepted
    for one release and converted here at the top (schema.typed)."""
    from sweep.models.library_output import to_log

    with to_log(Path(run_dir)):
        return _run_sweep(typed(settings), run_dir, **options)


def _run_sweep(
    settings: RunConfig,
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
    from sweep.models import facts as model_facts
    from sweep.models import hub
    from sweep.rundir import guard as rundir

    # model.path=org/name is a hub id; the variant the repo has
    settings = replace(settings, model=hub.resolve(settings.model))
    run_dir = Path(run_dir)
    model_cfg = settings.model
    ranks = ranks or ranks_for(settings)
    grid_spec = dict(settings.sweep.grid or {})
    seeds = None
    if ranks.is_main:
        seeds = recorded_seeds(run_dir, bool(settings.restart), shared_dir, grid_spec)
    seeds = ranks.share(seeds)
    # Bad input first, before anything heavy is imported; bounds only the model's config knows (steps, clip
    # skip) are checked again by plan.resolved once the facts are read.
    plan = plan_sweep(settings, seeds, multirun=multirun)
    if shared_dir is not None and plan.random_seeds and ranks.is_main:
        from sweep.planning.shared_seeds import keep_seeds

        plan = plan_sweep(settings, keep_seeds(shared_dir, grid_spec, plan.random_seeds), multirun=multirun)
    facts = _model_facts(plan, model_cfg)
    _main_decides(ranks, lambda: preflight(settings, run_dir, plan, facts, job if multirun else None, shared_dir))
    from sweep.models import pipeline  # torch: only once the input is known to be good
    from sweep.models.devices import resolve_device, resolve_dtype
    from sweep.planning import memory

    # Before the directory is touched or the model loads: a size whose image no device memory holds.
    target = resolve_device(str(model_cfg.get("device", "auto")))
    memory.check(plan, facts, target, model_cfg,
                 str(resolve_dtype(str(model_cfg.get("dtype", "auto")), target)).removeprefix("torch."))

    lock = rundir.RunLock(run_dir)

    def take_dir(facts: axes.Facts | None) -> Accepted | None:
        if lock.handle is None:
            rundir.classify_unheld(run_dir)
            lock.acquire()
        else:
            rundir.classify(run_dir)
        if facts is None:
            return None
        return accept(settings, run_dir, plan, facts, lock, on_accept, echo, job if multirun else None, shared_dir)

    try:
        accepted = _main_decides(ranks, lambda: take_dir(facts))
        if ranks.is_main:
            todo = len(accepted.cells) - len(accepted.done) if accepted else None
            echo(describe(plan, _model_name(plan, model_cfg), todo) + f" -> {run_dir}")
        device = ranks.device(resolve_device(str(model_cfg.get("device", "auto"))))
        if plan.model_axes:  # loaded per checkpoint / VAE, one at a time, in _generate_all
            return _generate_all(settings, run_dir, plan, accepted, None, facts, ranks, progress, echo, device)
        loaded = pipeline.load({**model_cfg, "device": device})
        if facts is None:  # config files were not readable before the load: check now, before any image
            facts = _with_model_files(model_facts.from_pipeline(loaded.pipe), model_cfg)
            accepted = _main_decides(ranks, lambda: take_dir(facts))
        return _generate_all(settings, run_dir, plan, accepted, loaded, facts, ranks, progress, echo, device)
    finally:
        lock.release()


def _model_name(plan: Plan, model: Mapping[str, Any]) -> str:
    from sweep.models import pipeline

    if "checkpoint" in plan.model_axes:
        return "per cell (" + ", ".join(axes.file_label(v) for v in plan.swept_values("checkpoint")) + ")"
    return pipeline.model_label(model)


def _model_facts(plan: Plan, model: Mapping[str, Any]) -> axes.Facts | axes.PerModel | None:
    """The facts of the model config, or with a checkpoint / VAE axis those of each model a cell uses (read
    from config files, before anything loads)."""
    from sweep.models import facts as model_facts
    from sweep.models.checkpoint_axes import model_config

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
    from sweep.models.refiner import DEFAULT_SWITCH

    return replace(facts, refiner_switch=DEFAULT_SWITCH)


def _generate_all(settings: RunConfig, run_dir: Path, plan: Plan, accepted: Accepted, loaded: Any,
                  facts: axes.Facts | axes.PerModel, ranks: Ranks, progress: bool, echo: Callable[[str], None],
                  device: str) -> RunSummary:
    """Every missing cell, with `loaded`, or (loaded=None: a checkpoint / VAE axis) loading each model in turn:
    the previous one is released before the next loads, so one pipeline is in memory at a time."""
    from sweep.prompts.cache import PromptCache

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
    threads = _threads(device, run_dir, done, loaded, units[0][0].size if units else None)
    writer = ImageWriter(run_dir, table, yield_cpu=device == "cpu")
    bar = _progress_bar(len(cells), len(done), enabled=progress and ranks.is_main)
    started = time.perf_counter()
    mine = ranks.mine(units)
    if ranks.count > 1:
        log.info("rank %d of %d: %d of %d batches", ranks.index, ranks.count, len(mine), len(units))
    try:
        with stop_on_signals() as stop:
            stop.immediate = bool(settings.model.get("compile"))  # a first call compiles for long before a step ends
            for key, group in _by_model(mine):
                if plan.model_axes:
                    loaded = prompts = None  # let the previous model go before the next one loads
                    try:
                        loaded = _load_model(settings.model, key, device)
                    except SweepError as exc:
                        # What only the load finds (a VAE or LoRA that does not fit this checkpoint, a file that
                        # lacks tensors): this model's cells fail with its one line, the other models' still run.
                        failed = [c for unit in group for c in unit if c.cell_id not in done]
                        which = ", ".join(f"{k} {axes.file_label(str(v))}" for k, v in key if v is not None)
                        line = f"{exc} (loading {which})" if which else str(exc)
                        for cell in failed:
                            writer.submit(_load_failed_row(cell, facts, plan, settings.model, key, device, threads,
                                                           line), None, cell, axes.facts_for(facts, cell))
                        log.error("%s", line)
                        bar.update(len(failed))
                        continue
                prompts = PromptCache(loaded.pipe, loaded.device)  # per model: its own text encoders
                fixed = {**_fixed(plan, loaded), "threads": threads}
                for outcome in execute(loaded, prompts, group, settings.model, plan.generator_device, stop):
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
        from sweep.resume import hint_here

        raise Interrupted(stop.signum, f"interrupted: {len(done) + writer.ok} of {len(cells)} images in "
                          f"{run_dir}; {hint_here(run_dir)}")
    _gather(summary, ranks)
    ranks.wait()
    if ranks.is_main:
        _finish(summary, run_dir, settings)
    return summary


def _load_failed_row(cell: Cell, facts: axes.Facts | axes.PerModel, plan: Plan, model: Mapping[str, Any],
                     key: tuple, device: str, threads: int, error: str) -> dict[str, Any]:
    """The failed row of a cell whose checkpoint / VAE could not be loaded (what the load would have recorded,
    from the model config)."""
    from sweep.models.checkpoint_axes import model_config
    from sweep.models.pipeline import model_label, options_label, resolved_dtype_name
    from sweep.rundir.metadata import environment

    own = model_config(model, dict(key))
    fixed = {"sweep": plan.name, "model": model_label(own), **environment(device, resolved_dtype_name(own)),
             "options": options_label(own), "generator_device": plan.generator_device, "threads": threads}
    outcome = Outcome([(cell, None, error)], 0.0, 0.0)
    return _row(cell, axes.facts_for(facts, cell), fixed, outcome, error)


def _fixed(plan: Plan, loaded: Any) -> dict[str, Any]:
    """The row fields one loaded model gives every image it makes."""
    from sweep.rundir.metadata import environment

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
    from sweep.models import pipeline
    from sweep.models.checkpoint_axes import model_config

    return pipeline.load({**model_config(model, dict(key)), "device": device})


def _threads(device: str, run_dir: Path, done: set[str], loaded: Any = None,
             size: tuple[int, int] | None = None) -> int:
    """torch's thread count for this run (sweep.running.cpu_threads on a CPU: the fastest of the candidate counts on
    the loaded model, fewer threads on cores other processes keep busy; a resume keeps the count its images
    were made with)."""
    import torch

    if device != "cpu":
        return torch.get_num_threads()
    from sweep.rundir.results import RESULTS, read_rows
    from sweep.running.cpu_threads import settle, unet_probe

    probe = unet_probe(loaded.pipe, *size) if loaded is not None and size and all(size) else None
    return settle((row.get("threads") or "" for row in read_rows(run_dir / RESULTS)
                   if row.get("status") == "ok" and row.get("cell_id") in done), probe=probe)


def _by_shape(cells: list[Cell]) -> list[list[Cell]]:
    groups: dict[tuple[int, int] | None, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.size, []).append(cell)
    return list(groups.values())


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


def _finish(summary: RunSummary, run_dir: Path, settings: RunConfig) -> None:
    """Report and status file, once, by the main process; a report error never loses the images."""
    import json
    import os

    from sweep.models import pipeline

    try:
        result = write_report(run_dir, settings)
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


def write_report(run_dir: Path, settings: RunConfig | Any) -> Any:
    """Sheets, summary table, plots, viewer and similarity metrics from the results table (sweep.report reads
    only the run dir). A composed config or a mapping is converted first, for one release (schema.typed)."""
    from dataclasses import asdict

    from sweep.report import build_report
    from sweep.report.scores import ScoreOptions

    settings = typed(settings)
    options = settings.report
    device = str(settings.model.get("device", "auto"))
    return build_report(
        run_dir,
        cell_max=int(options.cell_max),
        max_cells=int(options.max_cells),
        captions=bool(options.captions),
        reference=options.reference,
        scores=ScoreOptions.from_mapping(asdict(options), device=_score_device(device)),
    )


def _score_device(device: str) -> str | None:
    """The scorers run where the pipeline ran (None: the report picks cuda when there is one)."""
    from sweep.models.devices import resolve_device

    try:
        return resolve_device(device)
    except Exception:  # a device the report can still choose for itself
        return None
