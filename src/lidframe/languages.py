"""Canonical language codes: every model label and every ground-truth label in one code space.

The canonical form is a BCP-47 tag as ``langcodes.standardize_tag`` writes it (shortest ISO 639 code,
deprecated codes replaced: Whisper's ``jw`` becomes ``jv``, ``iw`` would become ``he``).
"""

from __future__ import annotations

from functools import lru_cache

import langcodes

from lidframe.errors import ConfigError

__all__ = ["canonical", "whisper_to_canonical"]


@lru_cache(maxsize=4096)
def canonical(tag: str) -> str:
    """Return the canonical BCP-47 form of ``tag``; raise :class:`ConfigError` for an unknown tag."""
    text = str(tag).strip()
    try:
        standard = langcodes.standardize_tag(text)
    except (ValueError, langcodes.LanguageTagError) as exc:
        raise ConfigError(f"unknown language code {tag!r}") from exc
    if not langcodes.Language.get(standard).is_valid():
        raise ConfigError(f"unknown language code {tag!r}")
    return standard


@lru_cache(maxsize=256)
def whisper_to_canonical(code: str) -> str:
    """Map a Whisper language token's code (``en``, ``jw``, ``haw``...) to the canonical code."""
    return canonical(code)
