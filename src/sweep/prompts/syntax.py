"""Prompts as the community writes them: A1111's attention syntax, long prompts, `<lora:NAME:W>` tags.

`prompt_syntax` (an axis, so it can also be compared) picks how prompt text becomes embeddings:

- `a1111` (the default, null): the A1111 prompt language as docs/prompt-language.md specifies it (parsed and
  chunked by `sweep.prompts.language`), so the same PNG parameters give A1111's conditioning: `(word)` x1.1,
  `(word:1.3)`, `[word]` /1.1, `\\(` escapes, `BREAK`; any length, in chunks of 75 tokens, each chunk through
  each text encoder, its hidden states multiplied by the weights and rescaled to their original mean; the pooled
  embedding is the first chunk's.
- `compel`: compel's own syntax (`word+`, `(word)1.3`, `.and()`) through compel's SDXL wrapper.
- `none`: the text as diffusers' `encode_prompt` takes it (cut at 77 tokens).

`<lora:NAME:W>` tags are taken out of every prompt under every syntax (the text encoder never sees them) and set
LoRA NAME's strength (a LoRA of `model.lora`); any other `<kind:...>` tag is refused in one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sweep.errors import SweepError, bad_value
from sweep.prompts.language import PromptError, cut_chunks, split_tags, standalone, weigh

SYNTAXES = ("a1111", "compel", "none")
SYNTAX_HELP = "a1111 (A1111's (word:1.3) weighting and long prompts; the default), compel, or none"
PROMPT_TEXTS = ("prompt", "prompt_2")  # where <lora:...> tags are applied
NEGATIVE_TEXTS = ("negative_prompt", "negative_prompt_2")
SUB_PROMPT_SEPARATOR = "AND"  # upper case, standing alone (docs/prompt-language.md, section 5)


def has_separator(text: str) -> bool:
    """Whether the text holds the word AND standing alone (no letter, digit or underscore touching it)."""
    return next(standalone(text, SUB_PROMPT_SEPARATOR), None) is not None


def trailing_weight(text: str) -> str | None:
    """A sub-prompt weight ending the text, as written from its colon (blanks after it dropped), or None.

    Section 5's `:NUMBER` at the very end: the text's last colon followed by nothing but blanks around one
    number (a sign or none, then digits with at most one dot among them).
    """
    colon = text.rfind(":")
    if colon < 0:
        return None
    number = text[colon + 1:].strip()
    unsigned = number[1:] if number[:1] in ("+", "-") and number else number
    if not unsigned.replace(".", "", 1).isdecimal():
        return None
    return text[colon:].rstrip()

def lora_tags(text: str | None, key: str = "prompt") -> dict[str, float]:
    """`<lora:NAME>` / `<lora:NAME:W>` tags of one text -> {NAME: W}; other tags and bad weights refused."""
    if not text:
        return {}
    _, tags = split_tags(text)
    out: dict[str, float] = {}
    for kind, args in tags:
        shown = f"<{kind}:{':'.join(args)}>"
        if kind != "lora":
            raise bad_value(key, shown, "<lora:NAME:W> tags only (other A1111 extra networks such as hypernetworks "
                            "are not supported)")
        try:
            weight = float(args[1]) if len(args) > 1 and args[1].strip() else 1.0
        except ValueError:
            raise bad_value(key, shown, "<lora:NAME:W> with W a number, e.g. <lora:detail:0.6>") from None
        if len(args) > 2:  # A1111's third field is a separate UNet weight: one strength per adapter here
            raise bad_value(key, shown, "<lora:NAME:W> with one weight (a separate UNet weight is not supported)")
        name = args[0].strip()
        if name in out and out[name] != weight:
            raise bad_value(key, shown, f"one weight per LoRA (it is also given {out[name]:g})")
        out[name] = weight
    return out


def check_texts(texts: Mapping[str, str | None], syntax: str | None, lora_names: Sequence[str],
                steps: int = 1) -> dict[str, float]:
    """Check one cell's prompt texts before anything loads (every text an edited prompt takes over `steps`
    steps); returns the LoRA strengths the tags set."""
    strengths: dict[str, float] = {}
    for key, text in texts.items():
        tags = lora_tags(text, key)
        if tags and key in NEGATIVE_TEXTS:
            raise bad_value(key, text, "a negative prompt without <lora:...> tags (put them in the prompt)")
        for name, weight in tags.items():
            if name not in lora_names:
                raise bad_value(key, f"<lora:{name}:{weight:g}>", "a LoRA named in model.lora: "
                                + (", ".join(lora_names) or "none is set (model.lora=FILE.safetensors)"))
            if name in strengths and strengths[name] != weight:
                raise bad_value(key, f"<lora:{name}:{weight:g}>", f"one weight per LoRA in all prompts "
                                f"(also {strengths[name]:g})")
            strengths[name] = weight
        if (syntax or "a1111") == "a1111" and text:
            _check_a1111(split_tags(text)[0], key, steps)
    return strengths


def edits_itself(texts: Mapping[str, str | None], syntax: str | None) -> bool:
    """Whether a text of the cell uses prompt editing or alternation (checked texts only)."""
    from sweep.prompts.schedule import read

    return (syntax or "a1111") == "a1111" and any(
        isinstance(v, str) and read(split_tags(v)[0]) is not None for v in texts.values())


def _check_composable(text: str, key: str) -> None:
    """A1111 reads `AND` and a trailing `:NUMBER` of a prompt as composable sub-prompts and their weights
    (docs/prompt-language.md, section 5): not run here, so refused rather than encoded as text."""
    if has_separator(text):
        raise bad_value(key, text, "a prompt without the word AND (A1111 reads AND as composable sub-prompts, "
                        "each a guidance term of its own: not supported; write 'and' for the word)")
    weight = trailing_weight(text)
    if weight is not None:
        raise bad_value(key, text, f"a prompt that does not end in ':NUMBER' (A1111 reads the trailing "
                        f"{weight!r} as a sub-prompt weight multiplying the guidance, not as text: "
                        f"not supported; end the prompt with something else, e.g. a comma)")


def _check_a1111(text: str, key: str, steps: int) -> None:
    """Weights that are numbers (in every text an edited prompt takes); `AND` and a trailing `:NUMBER` in a
    prompt (not in a negative prompt, where A1111 reads them as text); editing A1111 could read two ways."""
    from sweep.prompts.schedule import ScheduleError, all_texts

    try:
        variants = all_texts(text, steps)
    except ScheduleError as exc:
        raise bad_value(key, text, str(exc)) from None
    for variant in variants:
        try:
            weigh(variant)
        except PromptError as exc:
            raise bad_value(key, text, f"{exc.allowed}: {exc.piece!r} is not (escape literal brackets "
                            "as \\( \\))") from None
    if key in PROMPT_TEXTS:
        _check_composable(text, key)


def syntax_of(value: Any, key: str) -> str | None:
    """The prompt_syntax axis's value: None for a1111 (the default), else 'compel' or 'none'."""
    if value is None:
        return None
    text = str(value).strip().lower() if isinstance(value, str) else value
    if text in ("a1111", "", "default", "automatic1111"):
        return None
    if text not in SYNTAXES:
        raise bad_value(key, value, SYNTAX_HELP)
    if text == "compel":
        try:
            import compel  # noqa: F401
        except ImportError:
            raise bad_value(key, value, "a1111 or none (compel is not installed: pip install compel)") from None
    return text


def plain_texts(encode_args: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt texts without `<kind:...>` tags (what the encoders see), other encode arguments unchanged."""
    return {k: (split_tags(v)[0] if isinstance(v, str) and k in (*PROMPT_TEXTS, *NEGATIVE_TEXTS) else v)
            for k, v in encode_args.items()}


def cache_key(encode_args: Mapping[str, Any]) -> tuple:
    """What the embeddings depend on: the parsed prompts, so `(cat:1.0)` and `cat` share one encoding."""
    args = plain_texts(encode_args)
    syntax = args.get("prompt_syntax")
    out = []
    for k, v in sorted(args.items()):
        if syntax is None and isinstance(v, str) and k in (*PROMPT_TEXTS, *NEGATIVE_TEXTS):
            v = tuple(weigh(v))
        out.append((k, v))
    return tuple(out)


# --- encoding --------------------------------------------------------------------------------------------


def encode(pipe: Any, encode_args: Mapping[str, Any], device: str) -> tuple[Any, Any, Any, Any]:
    """(prompt_embeds, negative_prompt_embeds, pooled, negative_pooled) for one cell's encode arguments, CFG
    inputs included, one image."""
    args = plain_texts(encode_args)
    syntax = args.pop("prompt_syntax", None)
    if syntax == "none":
        return pipe.encode_prompt(**args, device=device, num_images_per_prompt=1, do_classifier_free_guidance=True)
    if syntax == "compel":
        return _encode_compel(pipe, args, device)
    if syntax is not None:
        raise SweepError(f"prompt_syntax: got {syntax!r}; allowed: {SYNTAX_HELP}")
    return _encode_a1111(pipe, args, device)


def _encoders(pipe: Any) -> list[tuple[Any, Any]]:
    """(tokenizer, text encoder) pairs the pipeline has (the refiner has only the second)."""
    pairs = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
    return [(t, e) for t, e in pairs if t is not None and e is not None]


def _hidden(encoder: Any, ids: list[int], clip_skip: int | None, device: Any) -> tuple[Any, Any]:
    """(hidden states SDXL conditions on, pooled output or None) of one chunk through one text encoder."""
    import torch

    out = encoder(torch.tensor([ids], device=device), output_hidden_states=True)
    pooled = out[0] if out[0].ndim == 2 else None  # CLIPTextModelWithProjection's text_embeds
    return out.hidden_states[-(clip_skip + 2) if clip_skip is not None else -2], pooled


def _weighted(encoder: Any, pieces: list[tuple[list[int], list[float]]], clip_skip: int | None,
              device: Any) -> tuple[list[Any], Any]:
    """Each chunk's hidden states times its token weights, then rescaled so their mean is what it was before
    (docs/prompt-language.md, "From chunks to conditioning")."""
    import torch

    zs, pooled = [], None
    for i, (ids, mults) in enumerate(pieces):
        z, chunk_pooled = _hidden(encoder, ids, clip_skip, device)
        if i == 0:
            pooled = chunk_pooled
        if any(m != 1.0 for m in mults):
            original_mean = z.mean()
            z = z * torch.tensor(mults, dtype=z.dtype, device=z.device).reshape(1, -1, 1)
            z = z * (original_mean / z.mean())
        zs.append(z)
    return zs, pooled


def _empty_chunk(tokenizer: Any) -> tuple[list[int], list[float]]:
    return cut_chunks(tokenizer, "")[0]


def _encode_side(pipe: Any, texts: Sequence[str], clip_skip: int | None, device: Any,
                 min_chunks: int = 0) -> tuple[list[list[Any]], Any]:
    """Chunk embeddings per encoder (each padded with empty chunks to a common count) and the pooled output."""
    pairs = _encoders(pipe)
    pieces = [cut_chunks(tok, text) for (tok, _), text in zip(pairs, texts, strict=False)]
    count = max(min_chunks, *(len(p) for p in pieces))
    per_encoder, pooled = [], None
    for (tok, encoder), piece in zip(pairs, pieces, strict=True):
        piece = piece + [_empty_chunk(tok)] * (count - len(piece))
        zs, chunk_pooled = _weighted(encoder, piece, clip_skip, device)
        per_encoder.append(zs)
        pooled = chunk_pooled if chunk_pooled is not None else pooled
    return per_encoder, pooled


def _encode_a1111(pipe: Any, args: Mapping[str, Any], device: str) -> tuple[Any, Any, Any, Any]:
    import torch

    clip_skip = args.get("clip_skip")
    two = len(_encoders(pipe)) == 2
    prompt = args.get("prompt") or ""
    positive = [prompt, args.get("prompt_2") or prompt] if two else [args.get("prompt_2") or prompt]
    negative_text = args.get("negative_prompt")
    zero_negative = negative_text is None and getattr(pipe.config, "force_zeros_for_empty_prompt", False)
    with torch.no_grad():
        pos, pooled = _encode_side(pipe, positive, clip_skip, device)
        count = len(pos[0])
        if zero_negative:
            neg, negative_pooled = None, torch.zeros_like(pooled)
        else:
            negative_text = negative_text or ""
            negative = ([negative_text, args.get("negative_prompt_2") or negative_text] if two
                        else [args.get("negative_prompt_2") or negative_text])
            neg, negative_pooled = _encode_side(pipe, negative, clip_skip, device, min_chunks=count)
            if len(neg[0]) > count:  # a longer negative prompt: the prompt gets empty chunks (A1111's padding)
                pos, pooled = _encode_side(pipe, positive, clip_skip, device, min_chunks=len(neg[0]))
    dtype = pipe.text_encoder_2.dtype if pipe.text_encoder_2 is not None else pipe.unet.dtype

    def join(per_encoder: list[list[Any]]) -> Any:
        return torch.cat([torch.cat(zs, dim=1) for zs in per_encoder], dim=-1).to(dtype=dtype, device=device)

    embeds = join(pos)
    negative_embeds = torch.zeros_like(embeds) if neg is None else join(neg)
    return embeds, negative_embeds, pooled.to(dtype=dtype, device=device), negative_pooled.to(dtype=dtype,
                                                                                               device=device)


def _encode_compel(pipe: Any, args: Mapping[str, Any], device: str) -> tuple[Any, Any, Any, Any]:
    """compel's SDXL wrapper (its own syntax; clip_skip is not supported by it and refused at check time)."""
    import torch
    from compel import CompelForSDXL

    encoder = CompelForSDXL(pipe, device=device)
    negative = args.get("negative_prompt")
    with torch.no_grad():
        out = encoder(args.get("prompt") or "", style_prompt=args.get("prompt_2"), negative_prompt=negative or "",
                      negative_style_prompt=args.get("negative_prompt_2"))
    negative_embeds, negative_pooled = out.negative_embeds, out.negative_pooled_embeds
    if negative is None and getattr(pipe.config, "force_zeros_for_empty_prompt", False):
        negative_embeds, negative_pooled = torch.zeros_like(out.embeds), torch.zeros_like(out.pooled_embeds)
    return out.embeds, negative_embeds, out.pooled_embeds, negative_pooled
