"""File names from user text (prompts, sweep names) that can never leave the run directory."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_UNSAFE = re.compile(r"[^A-Za-z0-9]+")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str, limit: int = 40) -> str:
    """ASCII letters, digits and '-' only: no '/', '..', quotes or control characters survive."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return _UNSAFE.sub("-", ascii_text).strip("-")[:limit].strip("-")


def safe_name(text: str, limit: int = 60) -> str:
    """A non-empty directory/file name for any text ('_' and '.' kept, but never '..' or a leading '.');
    a short hash keeps distinct texts that sanitise alike distinct."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    base = re.sub(r"\.{2,}", ".", _UNSAFE_NAME.sub("-", ascii_text)).strip(".-")[:limit].strip(".-")
    if base == str(text):
        return base
    digest = hashlib.sha1(str(text).encode()).hexdigest()[:8]
    return f"{base}-{digest}" if base else digest
