"""The A1111 prompt language, written from its specification (docs/prompt-language.md), in three steps:

1. `lex` reads the text into tokens: plain text, escaped characters, brackets, weight closers, BREAK markers.
2. `weigh` runs those tokens over a stack of open groups and returns weighted fragments.
3. `cut_chunks` tokenizes the fragments and packs the tokens into 75-token chunks (BOS + 75 + EOS, padded).

`split_tags` takes `<kind:args>` tags (LoRAs) out first, as they never reach the text encoders.
The behaviour is pinned by tests/data/prompt_language.json (fragments, weights and chunks of 240+ prompts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

CHUNK_TOKENS = 75  # tokens between BOS and EOS
COMMA_REACH = 20  # how far back from a full chunk's end a comma may sit to become the cut
ROUND_FACTOR = 1.1  # `(text)`
SQUARE_FACTOR = 1 / 1.1  # `[text]`: the reciprocal, computed once, as a constant (its bits matter)
BREAK_TEXT, BREAK_WEIGHT = "BREAK", -1.0  # how a BREAK marker travels among the fragments

Fragment = tuple[str, float]
Chunk = tuple[list[int], list[float]]


class PromptError(ValueError):
    """A prompt the language cannot read: `piece` is the part at fault, `allowed` says what would do."""

    def __init__(self, piece: str, allowed: str) -> None:
        super().__init__(f"{piece!r}: {allowed}")
        self.piece, self.allowed = piece, allowed


class Kind(Enum):
    TEXT = "text"  # a run of plain characters (split further at BREAK)
    CHAR = "char"  # one escaped character, or nothing for a backslash that escapes nothing
    BREAK = "break"
    OPEN = "open"  # `(` or `[`
    CLOSE = "close"  # `)` or `]`
    CLOSE_WEIGHT = "close weight"  # `:NUMBER)`, blanks allowed around the number


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str  # the characters as written ("(" / "]" / ":1.3)" / the plain text)
    number: str = ""  # CLOSE_WEIGHT: the number as written


_SPECIAL = "\\()[]:"  # the characters that end a run of plain text
_ESCAPABLE = "()[]\\"


def is_word_char(char: str) -> bool:
    """A letter, a digit (of any script) or an underscore: what may not touch a word that must stand alone."""
    return char.isalnum() or char == "_"


def standalone(text: str, word: str) -> Iterator[int]:
    """Where `word` occurs in `text` with no word character (`is_word_char`) directly before or after it."""
    at = text.find(word)
    while at >= 0:
        end = at + len(word)
        if (at == 0 or not is_word_char(text[at - 1])) and (end == len(text) or not is_word_char(text[end])):
            yield at
        at = text.find(word, at + 1)


def _skip_blanks(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _weight_closer(text: str, colon: int) -> tuple[str, int] | None:
    """(the number as written, where the closer ends) when a round group's weight closer starts at `colon`:
    the colon, blanks, a sign or none, one or more digits and dots, blanks, `)`. None: the colon is text."""
    start = _skip_blanks(text, colon + 1)
    digits = start + 1 if text[start:start + 1] in ("+", "-") else start
    end = digits
    while end < len(text) and (text[end] == "." or text[end].isdecimal()):
        end += 1
    after = _skip_blanks(text, end)
    if end == digits or text[after:after + 1] != ")":
        return None
    return text[start:end], after + 1


def _plain_end(text: str, at: int) -> int:
    """Where the run of plain text from `at` ends: at the next special character, or the end."""
    while at < len(text) and text[at] not in _SPECIAL:
        at += 1
    return at


def lex(text: str) -> list[Token]:
    """The tokens of a prompt, left to right; every character belongs to exactly one token."""
    out: list[Token] = []
    at = 0
    while at < len(text):
        char = text[at]
        if char == "\\":
            following = text[at + 1:at + 2]
            if following and following in _ESCAPABLE:
                out.append(Token(Kind.CHAR, following))
                at += 2
            else:  # a backslash before anything else escapes nothing and is dropped
                out.append(Token(Kind.CHAR, ""))
                at += 1
        elif char in "([":
            out.append(Token(Kind.OPEN, char))
            at += 1
        elif char in ")]":
            out.append(Token(Kind.CLOSE, char))
            at += 1
        elif char == ":":
            closer = _weight_closer(text, at)
            if closer:
                number, end = closer
                out.append(Token(Kind.CLOSE_WEIGHT, text[at:end], number))
                at = end
            else:
                out.append(Token(Kind.TEXT, ":"))
                at += 1
        else:
            end = _plain_end(text, at)  # char is not special, so the run has at least one character
            out.extend(_split_at_break(text[at:end]))
            at = end
    return out


def _split_at_break(run: str) -> list[Token]:
    """A plain run with each `BREAK` word standing alone turned into a marker that takes the blanks on both
    sides of the word with it; the text between markers stays, even when empty."""
    out: list[Token] = []
    piece_from = 0  # where the text before the next marker starts
    for word in standalone(run, BREAK_TEXT):
        blanks_from = word
        while blanks_from > piece_from and run[blanks_from - 1].isspace():
            blanks_from -= 1
        out += [Token(Kind.TEXT, run[piece_from:blanks_from]), Token(Kind.BREAK, BREAK_TEXT)]
        piece_from = _skip_blanks(run, word + len(BREAK_TEXT))
    out.append(Token(Kind.TEXT, run[piece_from:]))
    return out


@dataclass
class _Group:
    """An open bracket: it scales the fragments from `first` on when it closes (or when the text ends)."""

    bracket: str
    first: int


def _scale(fragments: list[list[Any]], first: int, factor: float) -> None:
    for fragment in fragments[first:]:
        fragment[1] *= factor


def _number(token: Token) -> float:
    try:
        return float(token.number)
    except ValueError:
        raise PromptError(token.text, "a weight that is one number, as in (word:1.2)") from None


def weigh(text: str) -> list[Fragment]:
    """Weighted fragments of a prompt: each bracket group multiplies the weight of what it holds; adjacent
    fragments of equal weight merge; a BREAK marker is ('BREAK', -1.0) scaled by its groups like any fragment.

    >>> weigh('a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).')[:3]
    [('a ', 1.0), ('house', 1.5730000000000004), (' ', 1.1)]
    """
    fragments: list[list[Any]] = []
    open_groups: dict[str, list[_Group]] = {"(": [], "[": []}
    for token in lex(text):
        if token.kind is Kind.OPEN:
            open_groups[token.text].append(_Group(token.text, len(fragments)))
        elif token.kind is Kind.CLOSE_WEIGHT and open_groups["("]:
            group = open_groups["("].pop()
            _scale(fragments, group.first, _number(token))
        elif token.kind is Kind.CLOSE and open_groups["(" if token.text == ")" else "["]:
            group = open_groups["(" if token.text == ")" else "["].pop()
            _scale(fragments, group.first, ROUND_FACTOR if group.bracket == "(" else SQUARE_FACTOR)
        elif token.kind is Kind.BREAK:
            fragments.append([BREAK_TEXT, BREAK_WEIGHT])
        else:  # plain text, an escaped character, or a closer with nothing open: its characters as text
            fragments.append([token.text, 1.0])
    # Groups the text leaves open act as if closed at its end: all round ones (outermost first), then square.
    for bracket, factor in (("(", ROUND_FACTOR), ("[", SQUARE_FACTOR)):
        for group in open_groups[bracket]:
            _scale(fragments, group.first, factor)
    merged: list[list[Any]] = []
    for piece, weight in fragments or [["", 1.0]]:
        if merged and merged[-1][1] == weight:
            merged[-1][0] += piece
        else:
            merged.append([piece, weight])
    return [(piece, weight) for piece, weight in merged]


def is_break(fragment: Fragment) -> bool:
    return fragment[0] == BREAK_TEXT and fragment[1] == BREAK_WEIGHT


def _tag_at(text: str, at: int) -> tuple[str, str, int] | None:
    """(kind, arguments, end) of an extra-network tag opening with the `<` at `at`: `<`, a word (letters, digits,
    underscores), `:`, at least one character, up to the first `>` after the colon. None: no tag starts there."""
    colon = at + 1
    while colon < len(text) and is_word_char(text[colon]):
        colon += 1
    if colon == at + 1 or text[colon:colon + 1] != ":":
        return None
    close = text.find(">", colon + 1)
    if close <= colon + 1:  # no `>`, or nothing between the colon and it
        return None
    return text[at + 1:colon], text[colon + 1:close], close + 1


def split_tags(text: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """(text without `<kind:args>` tags, [(kind, args)]): tags are taken out before anything else is read.
    Extra-network tags are written as A1111 users write them (`<lora:name:0.8>`, `<hypernet:name>`)."""
    kept: list[str] = []
    found: list[tuple[str, list[str]]] = []
    copied = 0  # text before this has been kept or taken
    at = text.find("<")
    while at >= 0:
        tag = _tag_at(text, at)
        if tag is None:
            at = text.find("<", at + 1)
            continue
        kind, args, end = tag
        kept.append(text[copied:at])
        found.append((kind, args.split(":")))
        copied = end
        at = text.find("<", end)
    kept.append(text[copied:])
    return "".join(kept), found


# --- chunks ----------------------------------------------------------------------------------------------


def _pack(run: list[tuple[int, float]], comma: int | None) -> list[list[tuple[int, float]]]:
    """The chunks one BREAK-free run of (token, weight) fills; the last one is still open (maybe empty).

    A token that finds its chunk full starts the next one; when the full chunk holds a remembered comma within
    its last COMMA_REACH positions, the chunk ends after that comma and the tokens behind it move on with the
    new token. A comma is remembered only when it lands in a chunk that has room; moving forgets it.
    """
    packed: list[list[tuple[int, float]]] = [[]]
    comma_at: int | None = None
    for token, weight in run:
        current = packed[-1]
        full = len(current) == CHUNK_TOKENS
        if token == comma and not full:
            comma_at = len(current)
        elif full:
            moved: list[tuple[int, float]] = []
            if token != comma and comma_at is not None and CHUNK_TOKENS - comma_at <= COMMA_REACH:
                moved = current[comma_at + 1:]
                del current[comma_at + 1:]
            packed.append(moved)
            comma_at = None
        packed[-1].append((token, weight))
    return packed


def _frame(tokens: list[tuple[int, float]], bos: int, eos: int, pad: int) -> Chunk:
    """BOS + tokens + EOS, padded to CHUNK_TOKENS + 2 with the tokenizer's pad token; specials weigh 1.0."""
    room = CHUNK_TOKENS - len(tokens)
    return ([bos, *(t for t, _ in tokens), eos, *[pad] * room], [1.0, *(w for _, w in tokens), *[1.0] * (room + 1)])


def cut_chunks(tokenizer: Any, text: str) -> list[Chunk]:
    """Token ids and weights of each (CHUNK_TOKENS + 2)-token chunk of a prompt.

    BREAK ends the chunk it falls in, empty or not; the text's last chunk is kept when it holds a token or is
    the only one.
    """
    fragments = weigh(text)
    plain = [f for f in fragments if not is_break(f)]
    texts = [piece for piece, _ in plain]
    ids = iter(tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"] if texts else [])
    runs: list[list[tuple[int, float]]] = [[]]
    for fragment in fragments:
        if is_break(fragment):
            runs.append([])
        else:
            runs[-1] += [(token, fragment[1]) for token in next(ids)]
    comma = tokenizer.get_vocab().get(",</w>")
    kept: list[list[tuple[int, float]]] = []
    for number, run in enumerate(runs, 1):
        packed = _pack(run, comma)
        if number == len(runs) and not packed[-1] and (kept or len(packed) > 1):
            packed.pop()  # the text ends in an empty chunk after others
        kept += packed
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return [_frame(tokens, tokenizer.bos_token_id, tokenizer.eos_token_id, pad) for tokens in kept]
