"""Per-image scores (report.scores): CLIP score, PickScore and the LAION aesthetic predictor, in scores.csv.

- `clip_score`: torchmetrics' CLIPScore definition, max(100 * cos(image embedding, text embedding), 0), with the
  CLIP model `report.clip_model` (a local CLIPModel folder or a hub id; default openai/clip-vit-large-patch14).
- `pickscore`: a CLIP-type human-preference model (`report.pickscore_model`, default yuvalkirstain/PickScore_v1,
  with the processor `report.pickscore_processor`): exp(logit_scale) * cos, as PickScore's own code scores.
- `aesthetic`: LAION's aesthetic MLP (`report.aesthetic_model`: a .safetensors file or its URL, or a .pth read with
  torch.load(weights_only=True), never by unpickling code) on the L2-normalised image embedding of
  `report.clip_model` (the predictor was trained on CLIP ViT-L/14's).

The text scored is the prompt the image was made for, as A1111 shows it: weighting syntax stripped to its
fragments' text (sweep.prompts.language's weigh), `<lora:...>` tags removed, BREAK a space, whitespace collapsed; prompt
editing and alternation as the text in force at the last step.

scores.csv: one row per image of results.csv with status ok: `image` (as results.csv), `image_sha256` (of the
file scored), `prompt_text` and one column per scorer. Resumable: a row whose image and sha256 are unchanged keeps
its scores; a remade image is rescored; a new scorer adds a column; a scorer whose model files changed is
rescored. scores.json records each scorer's model, processor and the sha256 of its weight files. Models load with
safetensors only (`use_safetensors=True`), from a local folder or the Hugging Face cache (downloaded when online).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep.report.result import ReportError

SCORERS = ("clip_score", "pickscore", "aesthetic")
CSV, MANIFEST = "scores.csv", "scores.json"
DEFAULTS = {"clip_model": "openai/clip-vit-large-patch14", "pickscore_model": "yuvalkirstain/PickScore_v1",
            "pickscore_processor": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "aesthetic_model": None,
            "score_batch": 8}
KEYS = (*DEFAULTS, "scores")
PATTERNS = ["*.json", "*.txt", "*.safetensors"]  # what a hub id needs: configs, vocab, merges, weights
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
FIXED = ("image", "image_sha256", "prompt_text")


@dataclass(frozen=True)
class ScoreOptions:
    """What report.scores asks for and with which models (the report.* keys of the same names)."""

    names: tuple[str, ...] = ()
    clip_model: str = DEFAULTS["clip_model"]
    pickscore_model: str = DEFAULTS["pickscore_model"]
    pickscore_processor: str = DEFAULTS["pickscore_processor"]
    aesthetic_model: str | None = None
    score_batch: int = 8
    device: str | None = None  # None: cuda when there is one, else cpu

    @classmethod
    def from_mapping(cls, report: Mapping[str, Any], device: str | None = None) -> ScoreOptions:
        """From the `report` config (or the report CLI's options); raises ReportError for a bad value."""
        names = parse_names(report.get("scores"))
        batch = report.get("score_batch", 8)
        try:
            batch = int(str(batch).strip())
        except ValueError:
            batch = 0
        if batch < 1:
            raise ReportError("report.score_batch", report.get("score_batch"), "an integer >= 1 (images per batch)")
        texts = {}
        for key in ("clip_model", "pickscore_model", "pickscore_processor"):
            value = report.get(key)
            texts[key] = str(value).strip() if value not in (None, "") else DEFAULTS[key]
        aesthetic = report.get("aesthetic_model")
        return cls(names, **texts, aesthetic_model=str(aesthetic).strip() if aesthetic not in (None, "") else None,
                   score_batch=batch, device=device)


def parse_names(value: Any) -> tuple[str, ...]:
    """report.scores as a list, '[a,b]', 'a,b' or null -> ('a', 'b'); unknown names refused in one line."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",")]
    elif isinstance(value, Iterable):
        items = [str(v).strip() for v in value]
    else:
        items = [str(value)]
    names = tuple(dict.fromkeys(v for v in items if v))
    from sweep.errors import suggest

    for name in names:
        if name not in SCORERS:
            raise ReportError("report.scores", name, ", ".join(SCORERS) + suggest(name, SCORERS))
    return names


# --- where the models are ---------------------------------------------------------------------------


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def locate(key: str, name: str, *, download: bool = False, weights: bool = True) -> Path | None:
    """A CLIP folder: the local folder itself, or the hub id's snapshot in the Hugging Face cache (downloaded
    when `download` and online). None: a hub id not cached that can be downloaded later. Raises ReportError
    (one line) for a folder that is not a model, a path that does not exist, or an uncached id while offline.
    weights=False (a processor): only its configuration and vocabulary files are fetched."""
    patterns = PATTERNS if weights else [p for p in PATTERNS if p != "*.safetensors"]
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "preprocessor_config.json").is_file():
            raise ReportError(f"report.{key}", name, "a transformers CLIP folder (config.json, model.safetensors, "
                              "tokenizer and preprocessor files, as save_pretrained writes) or a hub id")
        return path
    if path.exists() or not _HUB_ID.match(name) or name.startswith((".", "/", "~")):
        raise ReportError(f"report.{key}", name, "an existing CLIP model folder or a hub id (owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True, allow_patterns=patterns))
    except Exception:  # not cached (huggingface_hub raises several kinds)
        pass
    if _offline():
        raise ReportError(f"report.{key}", name, "a local CLIP folder, or a hub id in the Hugging Face cache "
                          "(it is not cached and HF_HUB_OFFLINE is set)")
    if not download:
        return None
    try:
        return Path(snapshot_download(name, allow_patterns=patterns))
    except Exception as exc:
        raise ReportError(f"report.{key}", name, f"a hub id that can be downloaded ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def check(options: ScoreOptions) -> None:
    """Before generation: every model the asked scorers need is found (offline and not cached: one line)."""
    wanted = set(options.names)
    if wanted & {"clip_score", "aesthetic"}:
        locate("clip_model", options.clip_model)
    if "pickscore" in wanted:
        locate("pickscore_model", options.pickscore_model)
        locate("pickscore_processor", options.pickscore_processor, weights=False)
    if "aesthetic" in wanted:
        aesthetic_file(options.aesthetic_model)


def aesthetic_file(name: str | None) -> Path:
    allowed = ("a file of LAION's aesthetic MLP weights (.safetensors, or .pth read with weights_only=True), or an "
               "http(s) URL of one")
    if not name:
        raise ReportError("report.aesthetic_model", name, allowed)
    if re.match(r"(?i)^https?://", name):
        return _downloaded(name, allowed)
    path = Path(name).expanduser()
    if not path.is_file() or path.suffix.lower() not in (".safetensors", ".pth", ".pt"):
        raise ReportError("report.aesthetic_model", name, allowed)
    return path


def _downloaded(url: str, allowed: str) -> Path:
    """The weights behind a URL, fetched once into $XDG_CACHE_HOME/sdxl-sweep/aesthetic (a temp file, then a
    rename: a broken download never passes for the file) and read from there after. They are still only data:
    safetensors, or a .pth that torch.load(weights_only=True) reads (load_aesthetic)."""
    from urllib.error import URLError
    from urllib.parse import unquote, urlparse
    from urllib.request import urlopen

    base = unquote(Path(urlparse(url).path).name)
    if Path(base).suffix.lower() not in (".safetensors", ".pth", ".pt"):
        raise ReportError("report.aesthetic_model", url, allowed + " (the URL's file name must end in .safetensors, "
                          ".pth or .pt)")
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sdxl-sweep" / "aesthetic"
    path = root / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{re.sub(r'[^A-Za-z0-9._+-]', '_', base)}"
    if path.is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.part")
    try:
        with urlopen(url, timeout=60) as response, partial.open("wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        os.replace(partial, path)
    except (URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise ReportError("report.aesthetic_model", url, allowed + f" (could not download it: {reason})") from None
    return path


# --- identity (hashes) --------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weights(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".safetensors")


def file_hashes(files: Sequence[Path], known: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{file name: {sha256, size, mtime_ns}}; a hash recorded for the same size and mtime is reused (a 1.7 GB
    model is not read again on every report)."""
    out = {}
    for path in files:
        stat = path.stat()
        old = known.get(path.name) if isinstance(known, Mapping) else None
        if isinstance(old, dict) and old.get("size") == stat.st_size and old.get("mtime_ns") == stat.st_mtime_ns:
            out[path.name] = old
        else:
            out[path.name] = {"sha256": _sha256(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return out


def _identity(entry: Mapping[str, Any]) -> str:
    """One sha256 for a scorer: its model names and the hashes of every weight file."""
    text = json.dumps({k: entry.get(k) for k in ("model", "processor", "clip_model")}, sort_keys=True)
    text += "".join(f"\n{n}:{f['sha256']}" for n, f in sorted((entry.get("files") or {}).items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the prompt as text ---------------------------------------------------------------------------------


def plain_prompt(text: str, steps: int | None = None) -> str:
    """The text an image was made for, as A1111 shows it: weights stripped to the fragments' text, `<lora:...>`
    tags removed, BREAK a space, whitespace collapsed; prompt editing `[from:to:when]` and alternation `[a|b]`
    as the text in force at the last of `steps` steps (what the image settles into)."""
    from sweep.prompts.language import BREAK_TEXT, split_tags, weigh
    from sweep.prompts.schedule import ScheduleError, timeline

    stripped, _ = split_tags(str(text or ""))
    try:
        stripped = timeline(stripped, max(1, steps or 1))[-1][1]
    except (ScheduleError, ValueError):
        pass  # a text the run refused to schedule is scored as written
    # A BREAK marker is a negative weight (scaled by the groups around it); it separates, it is not a word.
    joined = "".join(" " if (t == BREAK_TEXT and w < 0) else t for t, w in weigh(stripped))
    return " ".join(joined.split())


# --- models -------------------------------------------------------------------------------------------


@dataclass
class Clip:
    """A CLIP model and its processor on one device."""

    model: Any
    processor: Any
    device: str
    max_length: int = 77

    @classmethod
    def load(cls, key: str, folder: Path, processor_folder: Path, device: str) -> Clip:
        from transformers import CLIPModel, CLIPProcessor

        try:
            model = CLIPModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
            processor = CLIPProcessor.from_pretrained(str(processor_folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ReportError(f"report.{key}", str(folder), "a CLIP model folder with model.safetensors and "
                              f"its processor files ({first})") from None
        model = model.to(device).eval()
        length = int(getattr(model.config.text_config, "max_position_embeddings", 77) or 77)
        return cls(model, processor, device, length)

    def image_embeds(self, images: list[Any]) -> Any:
        import torch

        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        with torch.inference_mode():
            pooled = self.model.vision_model(pixel_values=pixels).pooler_output
            return self.model.visual_projection(pooled).float()

    def text_embeds(self, texts: list[str]) -> Any:
        import torch

        tokens = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True,
                                max_length=self.max_length)
        with torch.inference_mode():
            pooled = self.model.text_model(input_ids=tokens["input_ids"].to(self.device),
                                           attention_mask=tokens["attention_mask"].to(self.device)).pooler_output
            return self.model.text_projection(pooled).float()


def cosine(a: Any, b: Any) -> Any:
    """Row-wise cosine of two (n, d) tensors."""
    return (a / a.norm(dim=-1, keepdim=True) * (b / b.norm(dim=-1, keepdim=True))).sum(dim=-1)


def load_aesthetic(path: Path) -> list[tuple[Any, Any]]:
    """LAION's aesthetic predictor as its Linear layers in order [(weight, bias)], from `layers.N.weight` (the
    improved predictor's nn.Sequential: Linear/Dropout x4 then Linear, no activations) or `weight`/`bias` (the
    older linear one). Never unpickles code."""
    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ReportError("report.aesthetic_model", str(path), "weights torch.load(weights_only=True) reads "
                              f"(plain tensors, no pickled code): {type(exc).__name__}") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ReportError("report.aesthetic_model", str(path), "a state dict of Linear layers")
    found: dict[int, dict[str, Any]] = {}
    for key, tensor in state.items():
        m = re.fullmatch(r"(?:(?:.*\.)?(\d+)\.)?(weight|bias)", str(key))
        if m and hasattr(tensor, "shape"):
            found.setdefault(int(m.group(1) or 0), {})[m.group(2)] = tensor.float()
    layers = [(found[i]["weight"], found[i].get("bias")) for i in sorted(found) if "weight" in found[i]]
    ok = layers and all(w.ndim == 2 for w, _ in layers) and layers[-1][0].shape[0] == 1 and all(
        a[0].shape[0] == b[0].shape[1] for a, b in zip(layers, layers[1:], strict=False))
    if not ok:
        raise ReportError("report.aesthetic_model", str(path), "LAION's aesthetic MLP: Linear layers "
                          "(layers.N.weight/bias) from the embedding size down to 1")
    return layers


def aesthetic_scores(layers: list[tuple[Any, Any]], embeds: Any) -> Any:
    if layers[0][0].shape[1] != embeds.shape[1]:
        raise ReportError("report.aesthetic_model", f"an MLP taking {layers[0][0].shape[1]} inputs",
                          f"one whose input size is report.clip_model's embedding size ({embeds.shape[1]}; LAION's "
                          "predictor takes CLIP ViT-L/14's 768)")
    x = embeds / embeds.norm(dim=-1, keepdim=True)
    for weight, bias in layers:
        x = x @ weight.to(x.device).T + (bias.to(x.device) if bias is not None else 0)
    return x[:, 0]


# --- scoring a run ------------------------------------------------------------------------------------


@dataclass
class Scored:
    """What score_run found: the table (scores.csv) and lines to print."""

    table: Any = None  # pandas.DataFrame or None when nothing was ever scored
    lines: list[str] = field(default_factory=list)
    path: Path | None = None


def _device(wanted: str | None) -> str:
    if wanted and wanted != "auto":
        return wanted
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _read_tables(run_dir: Path) -> Any:
    """scores.csv; for a multirun's sweep dir without one, its jobs' (each image under its job's folder, as the
    merged results.csv names it)."""
    import pandas as pd

    if (run_dir / CSV).is_file() or (run_dir / MANIFEST).is_file():
        return _read_table(run_dir / CSV)
    parts = []
    for path in sorted(run_dir.glob(f"*/{CSV}")):
        table = _read_table(path)
        table["image"] = [f"{path.parent.name}/{i}" for i in table["image"]]
        parts.append(table)
    return pd.concat(parts, ignore_index=True).fillna("") if parts else pd.DataFrame(columns=list(FIXED))


def _read_table(path: Path) -> Any:
    import pandas as pd

    if not path.is_file():
        return pd.DataFrame(columns=list(FIXED))
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        return pd.DataFrame(columns=list(FIXED))  # ours, rewritten whole: an unreadable one is rescored
    if not set(FIXED) <= set(table.columns):
        return pd.DataFrame(columns=list(FIXED))
    return table


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("scorers"), dict) else {}


def _job_manifest(run_dir: Path) -> dict[str, Any]:
    """A multirun sweep dir's: the scorers every job's scores.json records with the same model hash."""
    jobs = [_read_manifest(p).get("scorers") or {} for p in sorted(run_dir.glob(f"*/{MANIFEST}"))]
    if not jobs:
        return {}
    same = {n: e for n, e in jobs[0].items() if all((j.get(n) or {}).get("sha256") == e.get("sha256") for j in jobs)}
    return {"scorers": same}


def _images(run_dir: Path, cells: Any) -> list[tuple[str, str, str]]:
    """(image, sha256 of its file, prompt text) for every ok cell whose image file is there."""
    out = []
    seen = set()
    steps = cells["num_inference_steps"] if "num_inference_steps" in cells else [""] * len(cells)
    for image, status, prompt, n in zip(cells["image"], cells["status"], cells["prompt"], steps, strict=True):
        path = run_dir / str(image)
        if not image or status != "ok" or image in seen or not path.is_file():
            continue
        seen.add(image)
        out.append((str(image), _sha256(path), plain_prompt(prompt, int(n) if str(n).isdigit() else None)))
    return out


def _open(run_dir: Path, image: str) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO((run_dir / image).read_bytes())) as img:
        return img.convert("RGB")


def score_run(run_dir: Path, cells: Any, options: ScoreOptions) -> Scored:
    """Score every image not scored yet with each asked scorer; write scores.csv and scores.json (atomically).
    With no scorers asked, reads what an earlier report wrote (rows of remade images dropped)."""
    import pandas as pd

    from sweep.atomic import atomic_write
    from sweep.report.atomic import save_csv

    csv_path, manifest_path = run_dir / CSV, run_dir / MANIFEST
    table = _read_tables(run_dir)
    manifest = _read_manifest(manifest_path) if manifest_path.is_file() else _job_manifest(run_dir)
    recorded: dict[str, Any] = dict(manifest.get("scorers") or {})
    current = _images(run_dir, cells)
    frame = pd.DataFrame(current, columns=list(FIXED))
    old = {(r["image"], r["image_sha256"]): r for r in table.to_dict("records")}
    columns = [c for c in table.columns if c in SCORERS]
    for name in options.names:
        if name not in columns:
            columns.append(name)
    for name in columns:
        frame[name] = [old.get((i, s), {}).get(name, "") for i, s, _ in current]
    result = Scored()
    if not options.names:
        if not columns:
            return result
        result.table = frame
        return result

    device = _device(options.device)
    clip_needed = [n for n in options.names if n in ("clip_score", "aesthetic")]
    groups: list[tuple[list[str], str, str, str]] = []
    if clip_needed:
        groups.append((clip_needed, "clip_model", options.clip_model, options.clip_model))
    if "pickscore" in options.names:
        groups.append((["pickscore"], "pickscore_model", options.pickscore_model, options.pickscore_processor))
    for names, key, model_name, processor_name in groups:
        folder = locate(key, model_name, download=True)
        processor = folder if processor_name == model_name else locate("pickscore_processor", processor_name,
                                                                        download=True, weights=False)
        assert folder is not None and processor is not None  # download=True returns a folder or raises
        entries = {}
        for name in names:
            files = _weights(folder)
            entry: dict[str, Any] = {"model": model_name, "processor": processor_name}
            if name == "aesthetic":
                path = aesthetic_file(options.aesthetic_model)
                entry = {"model": str(options.aesthetic_model), "clip_model": model_name, "processor": processor_name}
                files = [*files, path]
            old_files = ((recorded.get(name) or {}).get("files") or {})
            entry["files"] = file_hashes(files, old_files)
            entry["sha256"] = _identity(entry)
            if (recorded.get(name) or {}).get("sha256") != entry["sha256"]:
                frame[name] = ""  # another model (or changed weights): its earlier scores do not count
            entries[name] = entry
        todo = [i for i in range(len(frame)) if any(frame.at[i, n] == "" for n in names)]
        if todo:
            clip = Clip.load(key, folder, processor, device)
            layers = load_aesthetic(aesthetic_file(options.aesthetic_model)) if "aesthetic" in names else None
            _score(run_dir, frame, todo, names, clip, layers, options.score_batch)
            del clip
            if device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()
        for name, entry in entries.items():
            recorded[name] = entry
        result.lines.append(f"scores: {', '.join(names)} of {len(todo)} new image{'s' if len(todo) != 1 else ''} "
                            f"({len(frame) - len(todo)} already scored) with {model_name} on {device}")
    result.path = save_csv(frame, csv_path)
    atomic_write(manifest_path, json.dumps({"version": 1, "scorers": recorded}, indent=2) + "\n")
    result.table = frame
    return result


def attach_scores(cells: Any, table: Any) -> dict[str, Any]:
    """{scorer: float Series on cells' index} from scores.csv's table (NaN for images without a score)."""
    import pandas as pd

    if table is None or table.empty:
        return {}
    out = {}
    for name in (c for c in table.columns if c in SCORERS):
        by_image = dict(zip(table["image"], pd.to_numeric(table[name], errors="coerce"), strict=True))
        values = pd.Series([by_image.get(i, float("nan")) if s == "ok" else float("nan")
                            for i, s in zip(cells["image"], cells["status"], strict=True)], index=cells.index,
                           dtype=float)
        if values.notna().any():
            out[name] = values
    return out


def _score(run_dir: Path, frame: Any, rows: list[int], names: list[str], clip: Clip,
           layers: list[tuple[Any, Any]] | None, batch: int) -> None:
    """Fill frame[name] for `rows`, `batch` images at a time."""
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        images = [_open(run_dir, frame.at[i, "image"]) for i in part]
        embeds = clip.image_embeds(images)
        texts = None
        for name in names:
            if name == "aesthetic":
                values = aesthetic_scores(layers, embeds)
            else:
                if texts is None:
                    texts = clip.text_embeds([frame.at[i, "prompt_text"] for i in part])
                cos = cosine(embeds, texts)
                if name == "clip_score":
                    values = (100 * cos).clamp(min=0)
                else:
                    values = clip.model.logit_scale.exp().float() * cos
            for i, value in zip(part, values.cpu().tolist(), strict=True):
                if frame.at[i, name] == "":  # a score already there is kept, never recomputed
                    frame.at[i, name] = f"{value:.6f}"
