"""Run a sweep: config -> checked plan of cells -> one shared pipeline -> images + results.csv -> report.

Plain functions, no Hydra: `run_sweep(cfg, run_dir)` is what the CLI calls and what tests call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweep import grid
from sweep.distributed import Ranks
from sweep.errors import SweepError, bad_value
from sweep.grid import AXES, Base, Cell
from sweep.report.reference import check as check_reference
from sweep.report.result import ReportResult
from sweep.results import IMAGES, ResultsTable, atomic_write

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Everything checked and expanded before the model is loaded or an image is made."""

    name: str
    cells: list[Cell]  # layout order; height/width None = the model's native size
    axes: dict[str, list[Any]]
    layout: dict[str, str | None]
    batch_size: int | None
    random_seeds: list[int] | None = None
    grid_spec: dict[str, Any] = field(default_factory=dict)


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
    errors: list[str] = field(default_factory=list)
    insights: list[str] = field(default_factory=list)  # the report's knee / seed-spread sentences

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors

    def lines(self) -> list[str]:
        per_image = f" ({self.seconds / self.made:.2f} s per image)" if self.made else ""
        out = [
            f"{self.name}: {self.made} made, {self.skipped} skipped (already done), {self.failed} failed "
            f"of {self.total} images in {self.seconds:.1f} s{per_image}",
            f"results: {self.run_dir / 'results.csv'}",
        ]
        out += [f"sheet:   {path}" for path in self.sheets]
        out += self.insights
        out += [f"error:   {error}" for error in self.errors]
        if self.failed:
            out.append(f"FAILED: {self.failed} image(s) failed; see the 'error' column of results.csv")
        return out


# --- plan ------------------------------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict from a DictConfig, a dataclass or a dict (tests pass any of them)."""
    from omegaconf import OmegaConf

    if isinstance(cfg, dict):
        return cfg
    return OmegaConf.to_container(OmegaConf.structured(cfg) if not OmegaConf.is_config(cfg) else cfg,
                                  resolve=True)


def plan_sweep(cfg: Mapping[str, Any], recorded_seeds: list[int] | None = None) -> Plan:
    """Check every key and value and expand the grid; raises SweepError naming the first bad one."""
    from sweep.pipeline import check_model_config

    sweep = cfg["sweep"]
    name = str(sweep.get("name") or "")
    if not name or name == "???":
        raise bad_value("sweep.name", name, "a non-empty name")
    prompt = cfg.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_value("prompt", prompt, "a non-empty prompt")
    base = Base(
        prompt=prompt,
        negative_prompt=cfg.get("negative_prompt") or None,
        seed=grid.check_seed(cfg.get("seed"), "seed"),
        num_inference_steps=grid.check_steps(cfg.get("num_inference_steps"), "num_inference_steps"),
        guidance_scale=grid.check_guidance(cfg.get("guidance_scale"), "guidance_scale"),
        height=None if cfg.get("height") is None else grid.check_side(cfg["height"], "height"),
        width=None if cfg.get("width") is None else grid.check_side(cfg["width"], "width"),
    )
    if (base.height is None) != (base.width is None):
        raise bad_value("height" if base.height is None else "width", None,
                        "height and width both set, or both null for the model's native size")
    batch_size = cfg.get("batch_size")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise bad_value("batch_size", batch_size, "an integer >= 1, or null for automatic")
    max_images = cfg.get("max_images", 1000)
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise bad_value("max_images", max_images, "an integer >= 1")
    if cfg.get("generator_device", "cpu") not in ("cpu", "cuda", "mps") and not str(
        cfg.get("generator_device")
    ).startswith("cuda:"):
        raise bad_value("generator_device", cfg.get("generator_device"), "cpu (same noise on any device), cuda or mps")
    grid_spec = {k: v for k, v in dict(sweep.get("grid") or {}).items() if v is not None}
    axes = grid.axis_values(grid_spec, recorded_seeds)
    layout = {k: v for k, v in dict(sweep.get("layout") or {}).items()}
    used = [v for v in layout.values() if v]
    for key, value in layout.items():
        if value and value not in AXES:
            raise bad_value(f"sweep.layout.{key}", value, "one of " + ", ".join(AXES))
    if len(used) != len(set(used)):
        raise bad_value("sweep.layout", layout, "a different axis for rows, cols and sheets")
    report = cfg.get("report") or {}
    if int(report.get("cell_max", 512)) < 64:
        raise bad_value("report.cell_max", report.get("cell_max"), "an integer >= 64 (pixels)")
    if int(report.get("max_cells", 64)) < 1:
        raise bad_value("report.max_cells", report.get("max_cells"), "an integer >= 1")
    check_reference(report.get("reference"), axes)
    check_model_config(cfg["model"])
    cells = grid.expand(base, axes)
    if len(cells) > max_images:
        raise bad_value("sweep.grid", f"{len(cells)} images",
                        f"at most max_images={max_images} (raise it with max_images=N if you mean it)")
    drawn = axes["seed"] if isinstance(grid_spec.get("seed"), str) and "random" in grid_spec["seed"] else None
    return Plan(name=name, cells=cells, axes=axes, layout=layout, batch_size=batch_size, random_seeds=drawn,
                grid_spec=grid_spec)


def describe(plan: Plan, model_name: str) -> str:
    """The work estimate printed before anything runs (A1111 prints the same before a big grid)."""
    steps = sum(c.num_inference_steps for c in plan.cells)
    axes = " x ".join(f"{len(v)} {k}" for k, v in plan.axes.items())
    return f"{plan.name}: {len(plan.cells)} images ({axes}), {steps} denoising steps, model {model_name}"


# --- run -------------------------------------------------------------------------------------------------


def manifest_for(plan: Plan, cells: list[Cell], model: Mapping[str, Any], dtype: str) -> dict[str, Any]:
    identity = {k: model.get(k) for k in ("source", "id", "path", "config", "variant")}
    identity["dtype"] = dtype
    return {
        "sdxl_sweep": 1,
        "sweep": {"name": plan.name, "layout": plan.layout, "grid": plan.grid_spec},
        "model": identity,
        "random_seeds": plan.random_seeds,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "expected_cells": [
            {**c.record(), "image": f"{IMAGES}/{c.cell_id}.png", "sweep": plan.name} for c in cells
        ],
    }


class ImageWriter:
    """PNG encoding and writing on a thread, off the denoising loop; bounded so memory stays flat."""

    def __init__(self, run_dir: Path, table: ResultsTable, pending: int = 8) -> None:
        self.run_dir = run_dir
        self.table = table
        self.queue: queue.Queue = queue.Queue(maxsize=pending)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="png-writer", daemon=True)
        self.thread.start()

    def submit(self, row: dict[str, Any], image: Any | None) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((row, image))

    def _loop(self) -> None:
        from sweep.metadata import png_bytes

        _yield_to_pipeline()
        while (item := self.queue.get()) is not None:
            row, image = item
            try:
                if image is not None:
                    # Image first, row second: a row always points at a complete PNG.
                    atomic_write(self.run_dir / row["image"], png_bytes(image, row))
                self.table.append(row)
            except BaseException as exc:  # surfaced to the main thread on the next submit/close
                self.error = exc

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _yield_to_pipeline() -> None:
    """Lower this thread's CPU priority (Linux, where nice is per thread): PNG encoding fills the gaps.

    torch's OpenMP threads wait for each other at every op, so a writer that takes a core from one of them for a
    moment stalls all of them for longer than it runs; at a lower priority it runs when a core is free instead.
    The bounded queue keeps it from falling behind for long: a full queue makes the pipeline wait for it.
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


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def generate(loaded: Any, prompts: Any, unit: list[Cell], generator_device: str) -> list[Any]:
    """One pipeline call for cells that differ only by seed: one fresh generator per image."""
    import torch

    first = unit[0]
    generators = [torch.Generator(device=generator_device).manual_seed(c.seed) for c in unit]
    with torch.inference_mode():
        output = loaded.pipe(
            **prompts.embeds(first.prompt, first.negative_prompt, len(unit)),
            num_inference_steps=first.num_inference_steps,
            guidance_scale=first.guidance_scale,
            height=first.height,
            width=first.width,
            generator=generators if len(unit) > 1 else generators[0],
            output_type="pil",
        )
    return list(output.images)


def run_sweep(
    cfg: Any,
    run_dir: Path,
    *,
    ranks: Ranks | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> RunSummary:
    """Generate every missing cell of the sweep into run_dir, then write the report. Raises SweepError."""
    from sweep import pipeline
    from sweep.metadata import environment
    from sweep.results import check_same_experiment, discard_run, read_manifest, write_manifest

    cfg = to_dict(cfg)
    run_dir = Path(run_dir)
    model_cfg = cfg["model"]
    recorded = None if cfg.get("restart") else read_manifest(run_dir)
    plan = plan_sweep(cfg, recorded.get("random_seeds") if recorded else None)
    ranks = ranks or Ranks.from_env(pipeline.resolve_device(str(model_cfg.get("device", "auto"))))
    if ranks.is_main:
        echo(describe(plan, str(model_cfg.get("name"))) + f" -> {run_dir}")

    loaded = pipeline.load({**model_cfg, "device": ranks.device(pipeline.resolve_device(
        str(model_cfg.get("device", "auto"))))})
    cells = grid.with_native_size(plan.cells, loaded.native_size)
    grid.check_unique_ids(cells)
    manifest = manifest_for(plan, cells, model_cfg, loaded.dtype)
    table = ResultsTable(run_dir)
    refused, done = None, set()
    if ranks.is_main:
        try:
            if cfg.get("restart"):
                discard_run(run_dir)
            else:
                check_same_experiment(run_dir, manifest)
            (run_dir / IMAGES).mkdir(parents=True, exist_ok=True)
            write_manifest(run_dir, manifest)
            done = table.prepare([c.cell_id for c in cells])
        except SweepError as exc:
            refused = str(exc)  # shared below: the other ranks stop too instead of waiting forever
    ranks.wait()
    refused, done = ranks.share((refused, done) if ranks.is_main else None)
    if refused:
        raise SweepError(refused)

    summary = RunSummary(name=plan.name, run_dir=run_dir, total=len(cells), skipped=len(done))
    # Batches are formed over ALL cells, so a resumed run calls the pipeline with exactly the batches of an
    # uninterrupted one (batch composition changes pixels by up to 1/255) and only writes what is missing.
    units = []
    for shape_cells in _by_shape(grid.shape_order(cells)):
        size = plan.batch_size or grid.auto_batch_size(shape_cells[0].height, shape_cells[0].width,
                                                       loaded.device)
        units += [u for u in grid.batches(shape_cells, size) if any(c.cell_id not in done for c in u)]
    if units and ranks.is_main and done:
        echo(f"resuming: {len(done)} of {len(cells)} images already in {run_dir}")
    fixed = {
        "sweep": plan.name,
        "model": loaded.label,
        **environment(loaded.device, loaded.dtype, type(loaded.pipe.scheduler).__name__),
        "options": loaded.options,
    }
    prompts = pipeline.PromptCache(loaded.pipe, loaded.device)
    writer = ImageWriter(run_dir, table)
    bar = _progress_bar(len(cells), len(done), enabled=progress and ranks.is_main)
    started = time.perf_counter()
    try:
        mine = ranks.mine(units)
        if ranks.count > 1:
            log.info("rank %d of %d: %d of %d batches", ranks.index, ranks.count, len(mine), len(units))
        for cells_done, images, seconds, error in _execute(loaded, prompts, mine, cfg):
            for cell, image in zip(cells_done, images, strict=True):
                if cell.cell_id in done:
                    continue
                row = _row(cell, fixed, len(cells_done), seconds, error)
                writer.submit(row, image)
                summary.failed += error is not None
                summary.made += error is None
            bar.update(sum(c.cell_id not in done for c in cells_done))
    finally:
        writer.close()
        bar.close()
    summary.seconds = time.perf_counter() - started
    _gather(summary, ranks)
    ranks.wait()
    if ranks.is_main:
        _finish(summary, run_dir, cfg)
    return summary


def _by_shape(cells: list[Cell]) -> list[list[Cell]]:
    groups: dict[tuple[int, int], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.height, cell.width), []).append(cell)
    return list(groups.values())


MAX_CPU_WORKERS = 4
# Single-image calls side by side: two overlap one call's Python (which holds the GIL) with the other's kernels;
# more only add OpenMP threads competing for the same cores (measured on 2 cores: 2 calls 0.95x, 3 calls 1.05x).
MAX_SINGLE_WORKERS = 2


def cpu_workers(loaded: Any, model: Mapping[str, Any]) -> tuple[int, int]:
    """(concurrent batched calls, torch threads of each) on the CPU; (1, 0) = one call at a time, as is.

    PyTorch splits every op over all its threads, which on small ops (small models, small images) mostly waits:
    the tiny model's UNet at 256x256 runs no faster on 2 threads than on 1. Independent pipeline calls side by
    side keep every core busy instead. Batched calls (more than one image) run on fewer threads each: their pixels
    may differ from a single call's by 1/255 anyway (diffusers #2659). A single-image call must stay exactly the
    plain `pipe(...)` call, and the thread count can change the last bit of a float, so single-image calls keep
    torch's thread count and only overlap (`MAX_SINGLE_WORKERS`): an op's result depends on how many threads
    split it, not on what else runs, so their pixels stay the plain call's.
    """
    import torch

    budget = torch.get_num_threads()  # what torch would use: physical cores, or OMP_NUM_THREADS / set_num_threads
    if (loaded.device != "cpu" or budget < 2 or model.get("compile") or model.get("cpu_offload")
            # diffusers upcasts an fp16 VAE in place around each decode: not safe with calls side by side.
            or getattr(loaded.pipe.vae, "dtype", None) == torch.float16):
        return 1, 0
    workers = min(MAX_CPU_WORKERS, budget)
    return workers, budget // workers


def _execute(loaded: Any, prompts: Any, units: list[list[Cell]], cfg: Mapping[str, Any]):
    """`_run_unit` over every unit: one at a time, or on the CPU side by side."""
    workers, threads = cpu_workers(loaded, cfg["model"])
    if workers > 1:
        yield from _run_parallel(loaded, prompts, units, cfg, workers, threads)
        return
    for unit in units:
        yield from _run_unit(loaded, prompts, unit, cfg)


def _run_parallel(loaded: Any, prompts: Any, units: list[list[Cell]], cfg: Mapping[str, Any], workers: int,
                  threads: int):
    """Units on a pool of threads; results as they finish.

    A batched unit runs on `threads` torch threads with up to `workers` calls in flight; a single-image unit on
    torch's own thread count with up to MAX_SINGLE_WORKERS in flight. A unit always runs the same way however
    many are left, so a resumed sweep makes the same pixels as an uninterrupted one.
    """
    import dataclasses
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    import torch

    from sweep.pipeline import fork

    default = torch.get_num_threads()  # this thread's count; the pool's threads start with their own

    def work(unit: list[Cell]) -> list[tuple]:
        # OpenMP keeps the thread count per OS thread: set it in this one, for this unit.
        torch.set_num_threads(threads if len(unit) > 1 else default)
        return list(_run_unit(dataclasses.replace(loaded, pipe=fork(loaded.pipe)), prompts, unit, cfg))

    # Longest first, so no core idles at the end waiting for one long call (greedy LPT scheduling).
    todo = sorted(units, key=lambda u: -len(u) * u[0].num_inference_steps * (1 + u[0].cfg) * u[0].height
                  * u[0].width)
    with ThreadPoolExecutor(workers, thread_name_prefix="sweep-pipe") as pool:
        running: set = set()
        while todo or running:
            # A bounded number of calls in flight: finished images wait in no queue but the writer's.
            while todo and len(running) < (workers if len(todo[0]) > 1 else min(workers, MAX_SINGLE_WORKERS)):
                running.add(pool.submit(work, todo.pop(0)))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                yield from future.result()


def _run_unit(loaded: Any, prompts: Any, unit: list[Cell], cfg: Mapping[str, Any]):
    """Yield (cells, images, seconds per image, error) for one batch; a failure never stops the sweep."""
    started = time.perf_counter()
    try:
        images = generate(loaded, prompts, unit, cfg.get("generator_device", "cpu"))
        yield unit, images, (time.perf_counter() - started) / len(unit), None
        return
    except Exception as exc:  # one bad cell (e.g. out of memory at one size) must not lose the others
        oom = _is_oom(exc)
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
        if oom:
            _free_memory()
    if len(unit) > 1 and oom:
        # A batch that does not fit may fit one image at a time.
        log.warning("out of memory with %d images per call; retrying one at a time", len(unit))
        for cell in unit:
            yield from _run_unit(loaded, prompts, [cell], cfg)
        return
    log.error("failed: %s: %s", ", ".join(c.cell_id for c in unit), error)
    yield unit, [None] * len(unit), (time.perf_counter() - started) / len(unit), error


def _row(cell: Cell, fixed: Mapping[str, Any], batch: int, seconds: float, error: str | None) -> dict[str, Any]:
    record = cell.record()
    return {
        **record,
        **fixed,
        "batch_size": batch,
        "seconds": round(seconds, 4),
        "status": "failed" if error else "ok",
        "error": error or "",
        "image": "" if error else f"{IMAGES}/{cell.cell_id}.png",
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


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
        report = write_report(run_dir, cfg)
        summary.sheets, summary.insights = list(report.sheets), list(report.insights)
    except Exception as exc:
        log.exception("report failed")
        summary.errors.append(f"report: {type(exc).__name__}: {exc}")
    status = {"name": summary.name, "total": summary.total, "made": summary.made, "skipped": summary.skipped,
              "failed": summary.failed, "seconds": round(summary.seconds, 3), "errors": summary.errors,
              # A multirun's jobs in one process share one pipeline: the same pid, loads stays at 1.
              "pid": os.getpid(), "pipeline_loads": pipeline.LOADS}
    atomic_write(run_dir / "status.json", json.dumps(status, indent=2) + "\n")


def write_report(run_dir: Path, cfg: Mapping[str, Any]) -> ReportResult:
    """Sheets, summary table, plots and metrics from the results table (sweep.report reads only the run dir)."""
    from sweep.report import build_report

    options = cfg.get("report") or {}
    return build_report(
        run_dir,
        cell_max=int(options.get("cell_max", 512)),
        max_cells=int(options.get("max_cells", 64)),
        captions=bool(options.get("captions", True)),
        reference=options.get("reference"),
    )
