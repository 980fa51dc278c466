"""Which experiment a run directory holds: its identity (model, weights, how images are made), its manifest
(sweep.json), and accepting a directory for a run (refusing another experiment) before anything is written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweep import axes
from sweep.grid import Cell
from sweep.planning.plan import Plan
from sweep.planning.schema import RunConfig
from sweep.rundir.results import IMAGES, ResultsTable, columns_for


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict from a DictConfig, a dataclass or a dict (tests pass any of them)."""
    from omegaconf import OmegaConf

    if isinstance(cfg, dict):
        return cfg
    return OmegaConf.to_container(OmegaConf.structured(cfg) if not OmegaConf.is_config(cfg) else cfg,
                                  resolve=True)


def model_identity(model: Mapping[str, Any], swept_models: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    from sweep.models.pipeline import resolved_dtype_name

    identity = {k: model.get(k) for k in ("source", "id", "path", "config", "variant")}
    # Model files loaded with the pipeline change the pixels; recorded only when set (older manifests lack them).
    identity.update({k: model[k] for k in ("vae", "lora", "refiner", "controlnet", "ip_adapter",
                                                         "ip_adapter_encoder") if model.get(k)})
    identity["dtype"] = resolved_dtype_name(model)
    for name in swept_models:  # an axis says what is loaded for each cell: the model config's own is not used
        for key in ("source", "id", "path") if name == "checkpoint" else (name,):
            identity.pop(key, None)
        identity[f"{name}_axis"] = True
    return identity


def weights(model: Mapping[str, Any], swept_models: list[str] | tuple[str, ...] = (),
            swept: Mapping[str, list[Any]] | None = None) -> dict[str, str]:
    """The SHA-256 of each local model file or folder the run loads (model.path, model.vae, model.refiner,
    each LoRA, and every value of a checkpoint / VAE axis in `swept`): other weights copied over a file or into
    a folder under the same name are another experiment. Hub ids and built-in models are left out (a hub
    revision does not change under a name), and so is what a model axis replaces."""
    from sweep.files import checkpoints
    from sweep.models.checkpoint_axes import axis_file
    from sweep.models.lora import parse

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
    from sweep.models.controlnet import entries

    for index, value in enumerate(entries(model.get("controlnet"))):
        if value != "tiny" and checkpoints.expand(value).exists():
            found[f"model.controlnet.{index}"] = checkpoints.weights_digest(value)
    from sweep.models.ip_adapter import check as ip_adapter_files

    adapter = ip_adapter_files(model)
    if adapter is not None and adapter.weights is not None:
        found["model.ip_adapter"] = checkpoints.weights_digest(adapter.weights)
        found["model.ip_adapter_encoder"] = checkpoints.weights_digest(adapter.encoder)
    for name, values in (swept or {}).items():
        for value in values:  # keyed by the value as typed: a grown axis adds keys, a kept value is compared
            path = axis_file(model, name, value) if value is not None else None
            if path is not None:
                found[f"sweep.grid.{name}.{value}"] = checkpoints.weights_digest(path)
    return found


def made_with(model: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    """How the images are made, as each row records it (compared on resume, used to adopt orphan images)."""
    from sweep.models.pipeline import model_label, options_label, resolved_dtype_name

    made = {"model": model_label(model), "dtype": resolved_dtype_name(model), "options": options_label(model),
            "generator_device": plan.generator_device}
    if "checkpoint" in plan.model_axes:
        del made["model"]  # each cell's checkpoint is a parameter column, compared with the others
    return made


def manifest_for(plan: Plan, cells: list[Cell], model: Mapping[str, Any], facts: axes.Facts) -> dict[str, Any]:
    return {
        "sdxl_sweep": 2,
        "sweep": {"name": plan.name, "layout": plan.layout, "grid": plan.grid_spec,
                  **({"labels": plan.labels} if plan.labels else {})},
        "model": model_identity(model, plan.model_axes),
        "weights": weights(model, plan.model_axes, {n: plan.swept_values(n) for n in plan.model_axes}),
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


def recorded_seeds(run_dir: Path, restart: bool, shared: Path | None, grid_spec: Any) -> list[int] | None:
    """Random seeds drawn earlier for this directory (or this multirun), so a resume or another job of the
    multirun uses the same ones."""
    from sweep.rundir.results import recorded_experiment

    if not restart:
        recorded = recorded_experiment(run_dir)
        if recorded and recorded.get("random_seeds"):
            return list(recorded["random_seeds"])
    if shared is not None:
        from sweep.planning.shared_seeds import read_seeds

        return read_seeds(shared, grid_spec)
    return None


def preflight(settings: RunConfig, run_dir: Path, plan: Plan, facts: axes.Facts | axes.PerModel | None,
              job: Mapping[str, Any] | None = None, shared_dir: Path | None = None) -> None:
    """Main rank, before torch is imported: the refusals the run dir alone decides (files the tool did not write,
    a lock held, a table it cannot have written, another sweep or other values), so they come in about a second
    instead of after the libraries load. Writes nothing; `accept` checks all of it again with the lock held,
    and what needs the libraries (the model's dtype) besides."""
    from sweep.rundir import guard as rundir
    from sweep.rundir.results import check_same_experiment, parse_table, recorded_experiment

    rundir.classify_unheld(run_dir)
    rundir.check_free(run_dir)
    if settings.restart:
        return
    parse_table(ResultsTable(run_dir, columns_for(plan.extra_axes)).path)
    recorded = recorded_experiment(run_dir)
    if recorded is not None and facts is not None:
        cells = plan.resolved(facts)
        # What accept's manifest also holds, taken from the record: only the sweep and its values compared here.
        current = {**{k: recorded.get(k) for k in ("model", "weights", "made_with")},
                   "sweep": {"name": plan.name},
                   "expected_cells": [{**c.record(facts), "sweep": plan.name} for c in cells]}
        check_same_experiment(run_dir, current, grow=bool(settings.grow))
    if job is not None:
        rundir.check_job(run_dir, shared_dir, list(job.get("overrides") or []), job.get("num"))


def accept(settings: RunConfig, run_dir: Path, plan: Plan, facts: axes.Facts, lock: Any,
           on_accept: Callable[[], None] | None, echo: Callable[[str], None],
           job: Mapping[str, Any] | None = None, shared_dir: Path | None = None) -> Accepted:
    """Main rank, lock held: refuse another experiment, or take the directory (nothing is written before).
    `job` (num, overrides) and `shared_dir`: a multirun job and its sweep dir."""
    from sweep.atomic import remove_stale_temp_files
    from sweep.report import OUTPUTS
    from sweep.rundir import guard as rundir
    from sweep.rundir.results import check_same_experiment, parse_table, write_manifest

    model = settings.model
    cells = plan.resolved(facts)
    manifest = manifest_for(plan, cells, model, facts)
    table = ResultsTable(run_dir, columns_for(plan.extra_axes))
    expected = {c.cell_id: rec for c, rec in zip(cells, manifest["expected_cells"], strict=True)}
    moved, parsed = None, None
    if settings.restart:
        moved = rundir.move_aside(run_dir, OUTPUTS)
        if moved:
            echo(f"restart=true: moved the earlier results to {moved}")
    else:
        parsed = parse_table(table.path)  # random bytes: refused before an experiment is read from the rows
        check_same_experiment(run_dir, manifest, grow=bool(settings.grow))
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
