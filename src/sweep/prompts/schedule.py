"""A1111's prompt editing `[from:to:when]` and alternation `[a|b]`: the text of each sampling step.

Written from docs/prompt-language.md, section 6. A prompt is read into a small tree (plain text, bracket groups
kept as text, edits, alternations); `timeline` gives, for a number of steps, the text in force up to each step;
`text_at` the text of one 0-based step. A text with no edit or alternation is its own timeline, one entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*\Z")
_STRAY = "[]():"  # characters the top level may hold outside any construct
_STOPS = "[]():|"  # characters that end plain text (unless a backslash takes them)
EDIT_TEXTS = ("prompt", "prompt_2", "negative_prompt", "negative_prompt_2")


MAX_DEPTH = 100  # brackets nested deeper than this are not read as editing (the reader recurses)


def _plain_end(text: str, at: int) -> int:
    """Where plain text from `at` ends (docs/prompt-language.md, section 6): at a bracket, colon or bar, or at
    the end; a backslash takes the next character with it, whatever it is, and a backslash with nothing after
    it ends the text before it."""
    while at < len(text):
        if text[at] == "\\":
            if at + 1 == len(text):
                break
            at += 2
        elif text[at] in _STOPS:
            break
        else:
            at += 1
    return at


class ScheduleError(ValueError):
    """A prompt whose editing A1111 may read in more than one way: refused rather than guessed."""


class _TooDeep(Exception):
    pass


@dataclass(frozen=True)
class Edit:
    """`[before:after:when]`: `before` (None: nothing) up to the switch step, `after` from the next one."""

    before: Seq | None
    after: Seq
    when: str  # the number as written: with a dot a fraction of the steps, without one a step number


@dataclass(frozen=True)
class Alternation:
    """`[a|b|...]`: option (step - 1) mod n at 1-based step `step`."""

    options: tuple[Seq | None, ...]


Node = Union[str, Edit, Alternation, "Seq"]


@dataclass(frozen=True)
class Seq:
    items: tuple[Node, ...]


class _Reader:
    """Recursive descent over the editing grammar; strays (unmatched brackets and colons) only at the top,
    where a construct is preferred to strays wherever one fits."""

    def __init__(self, text: str) -> None:
        self.text, self.at, self.strays, self.depth = text, 0, 0, 0

    def peek(self) -> str:
        return self.text[self.at:self.at + 1]

    def sequence(self) -> Seq | None:
        """Items up to a character that ends a nested sequence (`)` `]` `:` `|`) or the end; None on failure."""
        items: list[Node] = []
        while self.at < len(self.text):
            char = self.peek()
            if char in ")]:|":
                break
            if char in "([":
                node = self.group()
                if node is None:
                    return None
                items.append(node)
                continue
            end = _plain_end(self.text, self.at)
            if end == self.at:  # a backslash at the very end
                return None
            items.append(self.text[self.at:end])
            self.at = end
        return Seq(tuple(items))

    def expect(self, char: str) -> bool:
        if self.peek() == char:
            self.at += 1
            return True
        return False

    def group(self) -> Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooDeep
            return self._group()
        finally:
            self.depth -= 1

    def _group(self) -> Node | None:
        opening = self.peek()
        self.at += 1
        first = self.sequence()
        if first is None:
            return None
        if opening == "(":
            if self.expect(")"):
                return Seq(("(", first, ")"))
            if self.expect(":"):
                second = self.sequence()
                if second is not None and self.expect(")"):
                    return Seq(("(", first, ":", second, ")"))
            return None
        if self.expect("]"):
            return Seq(("[", first, "]"))
        if self.peek() == "|":
            options: list[Seq | None] = [first]
            while self.expect("|"):
                option = self.sequence()
                if option is None:
                    return None
                options.append(option if option.items else None)
            return Alternation(tuple(options)) if self.expect("]") else None
        if not self.expect(":"):
            return None
        second = self.sequence()
        if second is None:
            return None
        if self.expect("]"):
            when = _number(second)
            return Edit(None, first, when) if when is not None else None
        if not self.expect(":"):
            return None
        third = self.sequence()
        when = _number(third) if third is not None else None
        if when is None or not self.expect("]"):
            return None
        return Edit(first, second, when)

    def top(self) -> Seq | None:
        """The whole text: as `sequence`, but a bracket no construct fits, and any closer or colon, is a stray
        character taken as text; a bar outside an alternation means no parse (None)."""
        items: list[Node] = []
        while self.at < len(self.text):
            start, char = self.at, self.peek()
            if char in "([":
                node = self.group()
                if node is not None:
                    items.append(node)
                    continue
                self.at = start
            if char in _STRAY:
                items.append(char)
                self.strays += char in "(["  # an opening left as text: refused next to an edit (see read)
                self.at += 1
                continue
            end = _plain_end(self.text, self.at)
            if end == self.at:  # a bar outside any alternation, or a backslash at the very end
                return None
            items.append(self.text[self.at:end])
            self.at = end
        return Seq(tuple(items))


def _number(seq: Seq) -> str | None:
    if not all(isinstance(item, str) for item in seq.items):
        return None
    found = _NUMBER.match("".join(seq.items))  # type: ignore[arg-type]
    return found.group(1) if found else None


def _edits(node: Node | None) -> list[Node]:
    if node is None or isinstance(node, str):
        return []
    if isinstance(node, Edit):
        return [node, *_edits(node.before), *_edits(node.after)]
    if isinstance(node, Alternation):
        return [node, *(e for option in node.options for e in _edits(option))]
    return [e for item in node.items for e in _edits(item)]


def read(text: str) -> Seq | None:
    """The tree of a prompt that edits itself; None when it has no edit or alternation (its text is used as it
    is at every step, as A1111 uses a prompt its editing grammar cannot read). Refuses what is ambiguous."""
    reader = _Reader(text)
    try:
        tree = reader.top()
    except _TooDeep:
        if _looks_edited(text):
            raise ScheduleError(f"prompt editing within at most {MAX_DEPTH} nested brackets") from None
        return None  # plain text however deep: the weighting reads it without recursion
    if tree is None:
        if _looks_edited(text):
            raise ScheduleError("prompt editing [from:to:when] or alternation [a|b] that A1111's grammar does "
                                "not read (a bracket left open or a bar outside [a|b]); escape literal brackets "
                                "as \\[ \\]")
        return None
    if not _edits(tree):
        return None
    if reader.strays:
        raise ScheduleError("prompt editing without a bracket left open around it (A1111's grammar may read "
                            "such a prompt two ways); close it or escape it as \\( \\[")
    return tree


def _looks_edited(text: str) -> bool:
    """A `:` or `|` directly inside square brackets (escapes skipped): what reads as editing to a user."""
    stack: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "([":
            stack.append(char)
        elif char in ")]" and stack:
            stack.pop()
        elif char in ":|" and stack and stack[-1] == "[":
            return True
    return False


def _switch_step(when: str, steps: int) -> int:
    """The last 0-based step of `before`: with a dot a fraction of the steps, without one a step number."""
    value = float(when) * steps if "." in when else float(when)
    return min(steps, int(value))


def _text(node: Node | None, step: int, steps: int) -> str:
    """The text of `node` at 1-based schedule point `step`."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, Edit):
        return _text(node.before if step <= _switch_step(node.when, steps) else node.after, step, steps)
    if isinstance(node, Alternation):
        return _text(node.options[(step - 1) % len(node.options)], step, steps)
    return "".join(_text(item, step, steps) for item in node.items)


def timeline(text: str, steps: int) -> list[tuple[int, str]]:
    """[(last step, text)] in order: the text holds while the 0-based step is <= its last step."""
    tree = read(text)
    if tree is None:
        return [(steps, text)]
    points = {steps}
    for node in _edits(tree):
        if isinstance(node, Alternation):
            points.update(range(1, steps + 1))
        else:
            switch = _switch_step(node.when, steps)  # type: ignore[union-attr]
            if switch >= 1:
                points.add(switch)
    return [(point, _text(tree, point, steps)) for point in sorted(points)]


def text_at(entries: list[tuple[int, str]], step: int) -> str:
    """The text in force at 0-based `step`: the first entry whose last step is >= step (past the end, as A1111
    does for samplers that call the model more often than the steps, the first entry)."""
    for last, text in entries:
        if step <= last:
            return text
    return entries[0][1]


class StepTexts:
    """The encode arguments of each model call of one pipeline call whose texts edit themselves."""

    def __init__(self, encode_args: Mapping[str, Any], steps: int) -> None:
        from sweep.prompts.language import split_tags

        self.base = dict(encode_args)
        self.lines = {k: timeline(split_tags(v)[0], steps) for k, v in encode_args.items()
                      if k in EDIT_TEXTS and isinstance(v, str)}

    @property
    def changes(self) -> bool:
        return any(len(entries) > 1 for entries in self.lines.values())

    def at(self, call: int) -> dict[str, Any]:
        """Encode arguments of 0-based model call `call` (the pipeline's loop index)."""
        return {**self.base, **{k: text_at(entries, call) for k, entries in self.lines.items()}}


def step_texts(encode_args: Mapping[str, Any], steps: int) -> StepTexts | None:
    """The texts of each step when a text of an A1111-syntax call edits itself; None when none does."""
    if encode_args.get("prompt_syntax") is not None:
        return None
    texts = StepTexts(encode_args, steps)
    return texts if texts.changes else None


def switcher(texts: StepTexts, embeds_of: Any, inner: Any = None) -> Any:
    """A `callback_on_step_end` that hands the pipeline the next call's conditioning (prompt and pooled, the
    negative half first under classifier-free guidance) whenever the texts change; `embeds_of(args)` gives
    PromptCache.embeds' dict; `inner` is another step-end callback (the stop watch) run first."""
    import torch

    def callback(pipe: Any, call: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        out = inner(pipe, call, timestep, kwargs) if inner is not None else kwargs
        now, following = texts.at(call), texts.at(call + 1)
        if following != now:
            embeds = embeds_of(following)
            if pipe.do_classifier_free_guidance:
                out["prompt_embeds"] = torch.cat([embeds["negative_prompt_embeds"], embeds["prompt_embeds"]])
                out["add_text_embeds"] = torch.cat([embeds["negative_pooled_prompt_embeds"],
                                                    embeds["pooled_prompt_embeds"]])
            else:
                out["prompt_embeds"], out["add_text_embeds"] = embeds["prompt_embeds"], embeds["pooled_prompt_embeds"]
        return out

    return callback


def all_texts(text: str, steps: int) -> list[str]:
    """Every text a prompt takes over `steps` steps (refuses ambiguous editing)."""
    return [t for _, t in timeline(text, steps)]
