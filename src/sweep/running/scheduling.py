"""Pipeline calls and their scheduling: one call per batch of cells (`generate`), and which calls run when: one
at a time, or on a CPU batched calls side by side on a pool while single-image calls stay on the main thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sweep.grid import Cell
from sweep.running.signals import Stop

log = logging.getLogger(__name__)


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
    cell (`sweep.running.pixels.Pixels`: the writer thread makes the PNG; an image with NaN, as SDXL's fp16 VAE makes on
    GPUs when it overflows, or of one colour all over becomes a failed cell there, not a picture marked ok). A
    call a stop
    interrupted returns nothing. With a refiner, the base hands its latents over at the cell's refiner switch
    (SDXL's "ensemble of experts").
    """
    import contextlib

    import torch

    from sweep.models import unet_tweaks, variations
    from sweep.models.pipeline import fork
    from sweep.prompts import schedule as prompt_schedule
    from sweep.running import passes
    from sweep.running.pixels import from_numpy, from_output, raw_output

    first = unit[0]
    generators = [torch.Generator(device=generator_device).manual_seed(c.seed) for c in unit]
    width, height = first.size
    common = {**first.call_args(), "generator": generators if len(unit) > 1 else generators[0]}
    pag = unet_tweaks.uses_pag(first)  # never with a ControlNet (sweep.models.unet_tweaks.check)
    base = unet_tweaks.pag_pipeline(loaded) if pag else loaded.pipe
    if loaded.controlnet is not None:  # the ControlNet pipeline over the same components, with the control image
        from sweep.models import controlnet

        base = controlnet.control_pipeline(loaded)
        image = controlnet.control_image(first["control_image"], width, height)
        common["image"] = [image] * len(loaded.controlnet_labels) if len(loaded.controlnet_labels) > 1 else image
    if loaded.ip_adapter:  # the IP-Adapter's reference image; the pipeline encodes it with the image encoder
        from sweep.models import controlnet

        common["ip_adapter_image"] = controlnet.control_image(first["ip_adapter_image"], *_reference_size(first))
    pipe = fork(base, first.get("scheduler"), first.get("schedule_type"))
    # What only the first (text-to-image) pass takes: each image's varied starting noise (drawn now, from the
    # generators, as diffusers would draw it), the PAG scale.
    first_pass: dict[str, Any] = {}
    noise = variations.latents(pipe, unit, generators, height, width, generator_device)
    if noise is not None:
        first_pass["latents"] = noise
    if pag:
        first_pass["pag_scale"] = first["pag_scale"]
    callback = stop.watch(first.num_inference_steps) if stop else None
    encode_args = first.encode_args()
    edits = prompt_schedule.step_texts(encode_args, first.num_inference_steps)
    embeds = prompts.embeds(edits.at(0) if edits else encode_args, len(unit), first.state())
    overflow = embedding_overflow(embeds, first)
    if overflow:  # NaN before the UNet ran: the prompt's weights, not the VAE, the guidance or eta
        return [(None, overflow) for _ in unit]
    if edits is not None:  # prompt editing / alternation: the conditioning changes between steps
        callback = prompt_schedule.switcher(edits, lambda args: prompts.embeds(args, len(unit), first.state()),
                                            callback)
    kept = unet_tweaks.attention_kept(pipe) if pag else contextlib.nullcontext()
    with torch.inference_mode(), kept:
        if passes.needed(first):  # Hires. fix or image-to-image: a second pipeline over the same components
            images = passes.run(loaded, pipe, embeds, common, first, len(unit),
                                lambda steps: stop.watch(steps) if stop else None, first_pass)
            if images is None:  # a stop interrupted one of the passes
                return []
            return [(pixels, None) for pixels in from_numpy(images)]
        raw_output(pipe)  # not before the passes: they decode through the fork's own image processor
        if loaded.refiner is None:
            # "pt" after raw_output: the decode as it is, on the device; running.pixels converts it exactly as "pil"
            # would, off this thread on the CPU, on the GPU itself there.
            output = pipe(**embeds, **common, **first_pass, height=height, width=width, output_type="pt",
                          callback_on_step_end=callback)
        else:
            from sweep.models.refiner import DEFAULT_SWITCH

            switch = first.get("refiner_switch") or DEFAULT_SWITCH
            latents = pipe(**embeds, **common, **first_pass, height=height, width=width, denoising_end=switch,
                           output_type="latent", callback_on_step_end=callback).images
            refiner = fork(loaded.refiner.pipe, first.get("scheduler"), first.get("schedule_type"))
            raw_output(refiner)
            output = refiner(**loaded.refiner.prompts.embeds(first.encode_args(), len(unit), first.state()),
                             **common, image=latents, denoising_start=switch, output_type="pt")
        if getattr(pipe, "_interrupt", False):
            return []
        return [(pixels, None) for pixels in from_output(output.images)]


def _reference_size(cell: Cell) -> tuple[int, int]:
    """The IP-Adapter image as given (the CLIP image processor resizes and crops it itself): its own size."""
    import os

    from PIL import Image

    from sweep.models.controlnet import BUILTIN_IMAGE

    if cell["ip_adapter_image"] == BUILTIN_IMAGE:
        return 512, 512
    with Image.open(os.path.expanduser(cell["ip_adapter_image"])) as image:
        return image.size


def embedding_overflow(embeds: Mapping[str, Any], cell: Cell) -> str | None:
    """Why the prompt embeddings hold NaN or infinity (None: they are finite): A1111's `(text:weight)` weights
    multiply the embedding, and a weight float32 cannot hold makes it infinite, then NaN once rescaled."""
    import torch

    if all(torch.isfinite(t).all() for t in embeds.values() if isinstance(t, torch.Tensor)):
        return None
    from sweep.prompts.language import is_break, weigh

    weights = []
    for text in cell.texts().values():
        try:
            weights += [abs(w) for piece, w in weigh(text) if not is_break((piece, w))] if isinstance(text, str) else []
        except ValueError:  # another syntax (compel, none): no A1111 weights to name
            pass
    largest = max(weights, default=1.0)
    why = (f"its largest (text:weight) weight, {largest:.3g}, overflows float32" if largest > 1e4
           else "a text encoder's output overflowed")
    return (f"the prompt embedding came out NaN or infinite before denoising ({why}); allowed: prompt weights "
            "whose embedding stays finite (A1111 writes 0.5 to 1.5)")


def execute(loaded: Any, prompts: Any, units: list[list[Cell]], model: Mapping[str, Any], generator_device: str,
             stop: Stop):
    """`_run_unit` over every unit: one at a time, or on the CPU side by side."""
    from sweep.models.pipeline import apply_state

    workers, threads = cpu_workers(loaded, model)
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

    from sweep.models.pipeline import apply_state

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
            if alone(state):  # its calls change the shared UNet while they run: one at a time, here
                for unit in group:
                    if stop.requested:
                        return
                    torch.set_num_threads(default)
                    yield from _run_unit(loaded, prompts, unit, generator_device, stop, 1)
                continue
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


def alone(state: tuple[tuple[str, Any], ...]) -> bool:
    """Calls of this pipeline state run one at a time (an axis marked `solo` is set and non-zero: PAG)."""
    from sweep import axes

    return any(value and axes.get(name).solo for name, value in state)


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
