"""Prompt embeddings computed once per distinct prompt inputs, shared by the base pipeline and the refiner."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import torch


class PromptCache:
    """Each distinct set of text-encoder inputs goes through the two text encoders once per sweep."""

    def __init__(self, pipe: Any, device: str) -> None:
        self.pipe = pipe
        self.device = device
        self._cache: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self._lock = threading.Lock()  # concurrent CPU calls (scheduling._run_parallel) share one cache

    def embeds(self, encode_args: Mapping[str, Any], count: int, state: tuple = ()) -> dict[str, torch.Tensor]:
        """Pipeline kwargs for `count` images (CFG inputs included; unused when CFG is off). `encode_args` are
        `encode_prompt`'s own arguments (prompt, prompt_2, negative_prompt, negative_prompt_2, clip_skip) plus
        `prompt_syntax`; the key is the parsed prompts (sweep.prompts.syntax.cache_key), so `(cat:1.0)` and `cat`
        share an entry; `state` (LoRA strengths, which may change a text encoder) is part of the key too."""
        from sweep.prompts import syntax as prompt_syntax

        key = (prompt_syntax.cache_key(encode_args), state)
        with self._lock:
            if key not in self._cache:
                with torch.no_grad():
                    self._cache[key] = prompt_syntax.encode(self.pipe, encode_args, self.device)
            embeds, negative, pooled, negative_pooled = self._cache[key]
        return {
            "prompt_embeds": embeds.repeat(count, 1, 1),
            "negative_prompt_embeds": negative.repeat(count, 1, 1),
            "pooled_prompt_embeds": pooled.repeat(count, 1),
            "negative_pooled_prompt_embeds": negative_pooled.repeat(count, 1),
        }
