"""Canonical language codes: every model label and every ground-truth label in one code space.

Canonical codes
---------------
A canonical code is the *language subtag* of the BCP-47 tag that ``langcodes.standardize_tag``
writes: the shortest ISO 639 code (``eng`` and ``en`` both give ``en``), lower case, deprecated codes
replaced by their preferred values. Region, script and variant subtags are dropped (``en-US``,
``sv-SE`` and ``zh-Hant`` give ``en``, ``sv`` and ``zh``): language identification tells languages
apart, not regions or writing systems, and a ground-truth ``sv-SE`` must match a model's ``sv``.

Decisions on the codes where that rule alone would surprise (``langcodes`` follows CLDR's locale
aliases, a few of which merge two ISO 639 languages; those are overridden here):

* ``jw`` -> ``jv``: Javanese; ``jw`` (used by Whisper and VoxLingua107) is no ISO code.
* ``iw`` -> ``he``, ``in`` -> ``id``, ``ji`` -> ``yi``: deprecated ISO 639-1 codes replaced.
* ``mo``, ``mol`` -> ``ro``: Moldavian is deprecated in favour of Romanian.
* ``tl``, ``tgl`` -> ``tl`` (**override**; ``langcodes`` gives ``fil``): ``tl`` is the valid ISO
  639-1 code of Tagalog and what both Whisper and VoxLingua107 emit, so outputs read as the models
  mean them. ``fil`` (Filipino, standardised Tagalog) stays ``fil``; the two are one language under
  :data:`DEFAULT_EQUIVALENCE`, with ``tl`` as the representative.
* ``sh``, ``hbs`` -> ``sh`` (**override**; ``langcodes`` gives ``sr-Latn``, i.e. Serbian):
  Serbo-Croatian is the macrolanguage of ``sr``, ``hr``, ``bs`` and ``cnr``, not one of them.
* ``cnr`` -> ``cnr`` (**override**; ``langcodes`` gives ``sr-ME``): Montenegrin is its own language.
* ``no``, ``nb``, ``nn`` stay distinct (``nor``, ``nob``, ``nno`` give them); they are one language
  under :data:`DEFAULT_EQUIVALENCE`, represented by the macrolanguage ``no``.
* ``zh-CN``, ``zh-TW``, ``zh-Hans``, ``zh-Hant``, ``zh-HK`` -> ``zh``. Common Voice's ``zh-HK``
  is Cantonese audio: relabel it ``yue`` before use. ``cmn`` (Mandarin) keeps its ISO 639-3
  code and is one language with ``zh`` by default.
* ``yue``, ``zh-yue`` -> ``yue``: Cantonese is distinct from ``zh`` by default (Whisper has both);
  ``DEFAULT_EQUIVALENCE.merge(["zh", "yue"])`` counts it as Chinese.
* ``haw``, ``sco``, ``ceb``, ``war`` stay as they are: Hawaiian, Scots, Cebuano and Waray have no
  ISO 639-1 code, so the ISO 639-3 code is the shortest.

Empty, malformed and unknown codes, and tags that name no language (``und``, ``x-private``) raise
:class:`~lidframe.errors.ConfigError` naming the code.

Equivalence
-----------
Models and datasets disagree on where one language ends: Whisper and VoxLingua107 both have ``no``
and ``nn``, ``sr``, ``hr`` and ``bs``, ``ms`` and ``id``. A :class:`LanguageEquivalence` lists groups
of canonical codes that count as one language; each group's first code is its representative
(``key``), which is what consensus writes. :data:`DEFAULT_EQUIVALENCE` holds the groups in
:data:`DEFAULT_GROUPS`; :data:`NO_EQUIVALENCE` compares codes exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import langcodes

from lidframe.errors import ConfigError

__all__ = [
    "DEFAULT_EQUIVALENCE",
    "DEFAULT_GROUPS",
    "NO_EQUIVALENCE",
    "NO_LANGUAGE",
    "VOXLINGUA107_LABELS",
    "LanguageEquivalence",
    "canonical",
    "candidate_labels",
    "candidate_languages",
    "is_canonical",
    "label_code",
    "voxlingua_to_canonical",
    "whisper_to_canonical",
]

# Primary subtags whose langcodes result merges two ISO 639 languages (see the module docstring).
_OVERRIDES: Mapping[str, str] = {
    "tl": "tl",
    "tgl": "tl",
    "sh": "sh",
    "hbs": "sh",
    "cnr": "cnr",
}


@lru_cache(maxsize=4096)
def canonical(tag: str) -> str:
    """Return the canonical code of ``tag`` (``'EN'`` -> ``'en'``, ``'jw'`` -> ``'jv'``).

    Raises :class:`ConfigError` naming ``tag`` when it is empty, malformed, unknown, or names no
    language (``und``).
    """
    text = str(tag).strip()
    if not text:
        raise ConfigError(f"empty language code {tag!r}")
    try:
        language = langcodes.Language.get(langcodes.standardize_tag(text))
    except (ValueError, langcodes.LanguageTagError) as exc:
        raise ConfigError(f"unknown language code {tag!r}: {exc}") from exc
    if not language.is_valid():
        raise ConfigError(f"unknown language code {tag!r}")
    code = language.language
    if code is None or code == "und" or not (code.isascii() and code.isalpha() and len(code) <= 3):
        raise ConfigError(f"language code {tag!r} names no language")
    primary = text.replace("_", "-").split("-", 1)[0].lower()
    return _OVERRIDES.get(primary, str(code))


# What a row without speech is, as an answer and as ground truth ("undetermined").
NO_LANGUAGE = "und"
# Ground-truth tags that say "no language": ``und`` and BCP-47's ``zxx`` ("no linguistic content").
_NO_LANGUAGE_TAGS = frozenset({"und", "zxx"})


def label_code(tag: str) -> str:
    """A ground-truth label as a code: :func:`canonical`, or :data:`NO_LANGUAGE` for ``und`` and
    ``zxx`` (a recording of silence, noise or music: lidframe's right answer there is ``und``)."""
    if str(tag).strip().lower() in _NO_LANGUAGE_TAGS:
        return NO_LANGUAGE
    return canonical(tag)


def is_canonical(code: str) -> bool:
    """Whether ``code`` is already a canonical code (``'en'`` yes; ``'EN'``, ``'iw'``, ``'xx'`` no)."""
    try:
        return canonical(code) == code
    except ConfigError:
        return False


def whisper_to_canonical(code: str) -> str:
    """Map a Whisper language code (``'en'``, ``'jw'``, ``'haw'``; or ``'<|en|>'``) to canonical.

    Every one of Whisper's 100 codes maps to a distinct canonical code (``jw`` -> ``jv``, the
    others unchanged: ``tl`` stays ``tl``, ``yue`` stays apart from ``zh``, ``nn`` from ``no``).
    """
    text = str(code).strip()
    if text.startswith("<|") and text.endswith("|>"):
        text = text[2:-2]
    try:
        return canonical(text)
    except ConfigError as exc:
        raise ConfigError(f"unknown Whisper language code {code!r}") from exc


def voxlingua_to_canonical(label: str) -> str:
    """Map a VoxLingua107 label (``'iw: Hebrew'``, or a bare code ``'iw'``) to canonical (``'he'``).

    Every label of :data:`VOXLINGUA107_LABELS` maps to a distinct canonical code.
    """
    code = str(label).split(":", 1)[0].strip()
    try:
        return canonical(code)
    except ConfigError as exc:
        raise ConfigError(f"unknown VoxLingua107 label {label!r}") from exc


# The labels of speechbrain/lang-id-voxlingua107-ecapa, in label_encoder.txt order (index 0..106).
VOXLINGUA107_LABELS: tuple[str, ...] = (
    "ab: Abkhazian",
    "af: Afrikaans",
    "am: Amharic",
    "ar: Arabic",
    "as: Assamese",
    "az: Azerbaijani",
    "ba: Bashkir",
    "be: Belarusian",
    "bg: Bulgarian",
    "bn: Bengali",
    "bo: Tibetan",
    "br: Breton",
    "bs: Bosnian",
    "ca: Catalan",
    "ceb: Cebuano",
    "cs: Czech",
    "cy: Welsh",
    "da: Danish",
    "de: German",
    "el: Greek",
    "en: English",
    "eo: Esperanto",
    "es: Spanish",
    "et: Estonian",
    "eu: Basque",
    "fa: Persian",
    "fi: Finnish",
    "fo: Faroese",
    "fr: French",
    "gl: Galician",
    "gn: Guarani",
    "gu: Gujarati",
    "gv: Manx",
    "ha: Hausa",
    "haw: Hawaiian",
    "hi: Hindi",
    "hr: Croatian",
    "ht: Haitian",
    "hu: Hungarian",
    "hy: Armenian",
    "ia: Interlingua",
    "id: Indonesian",
    "is: Icelandic",
    "it: Italian",
    "iw: Hebrew",
    "ja: Japanese",
    "jw: Javanese",
    "ka: Georgian",
    "kk: Kazakh",
    "km: Central Khmer",
    "kn: Kannada",
    "ko: Korean",
    "la: Latin",
    "lb: Luxembourgish",
    "ln: Lingala",
    "lo: Lao",
    "lt: Lithuanian",
    "lv: Latvian",
    "mg: Malagasy",
    "mi: Maori",
    "mk: Macedonian",
    "ml: Malayalam",
    "mn: Mongolian",
    "mr: Marathi",
    "ms: Malay",
    "mt: Maltese",
    "my: Burmese",
    "ne: Nepali",
    "nl: Dutch",
    "nn: Norwegian Nynorsk",
    "no: Norwegian",
    "oc: Occitan",
    "pa: Panjabi",
    "pl: Polish",
    "ps: Pushto",
    "pt: Portuguese",
    "ro: Romanian",
    "ru: Russian",
    "sa: Sanskrit",
    "sco: Scots",
    "sd: Sindhi",
    "si: Sinhala",
    "sk: Slovak",
    "sl: Slovenian",
    "sn: Shona",
    "so: Somali",
    "sq: Albanian",
    "sr: Serbian",
    "su: Sundanese",
    "sv: Swedish",
    "sw: Swahili",
    "ta: Tamil",
    "te: Telugu",
    "tg: Tajik",
    "th: Thai",
    "tk: Turkmen",
    "tl: Tagalog",
    "tr: Turkish",
    "tt: Tatar",
    "uk: Ukrainian",
    "ur: Urdu",
    "uz: Uzbek",
    "vi: Vietnamese",
    "war: Waray",
    "yi: Yiddish",
    "yo: Yoruba",
    "zh: Chinese",
)

# Codes that count as one language by default; the first code of a group is its representative.
DEFAULT_GROUPS: tuple[tuple[str, ...], ...] = (
    # Whisper and VoxLingua107 both split these, though speech (and datasets) often do not.
    ("no", "nb", "nn"),  # Norwegian: Bokmål and Nynorsk
    ("sh", "sr", "hr", "bs", "cnr"),  # Serbo-Croatian: Serbian, Croatian, Bosnian, Montenegrin
    ("ms", "id", "zsm"),  # Malay: Indonesian, Standard Malay
    # The models say ``tl``; datasets such as FLEURS say ``fil``.
    ("tl", "fil"),  # Tagalog and Filipino, its standard form
    # Macrolanguages and the individual language that ground truth may be coded with (ISO 639-3).
    ("zh", "cmn"),  # Chinese: Mandarin (Cantonese ``yue`` stays distinct)
    ("ar", "arb"),  # Arabic: Standard Arabic
    ("fa", "pes"),  # Persian: Iranian Persian (Dari ``prs`` is already ``fa``)
    ("sw", "swh"),  # Swahili
    ("et", "ekk"),  # Estonian
    ("lv", "lvs"),  # Latvian
    ("uz", "uzn"),  # Uzbek: Northern Uzbek
    ("mn", "khk"),  # Mongolian: Halh Mongolian
    ("ne", "npi"),  # Nepali
    ("sq", "als"),  # Albanian: Tosk Albanian
    ("az", "azj"),  # Azerbaijani: North Azerbaijani
    ("ps", "pbu"),  # Pashto: Northern Pashto
    ("mg", "plt"),  # Malagasy: Plateau Malagasy
    ("yi", "ydd"),  # Yiddish: Eastern Yiddish
)


@dataclass(frozen=True)
class LanguageEquivalence:
    """Groups of canonical codes that count as one language.

    ``key(code)`` is the representative of ``code``'s group (its first code), or ``code`` itself
    when it is in no group; two codes are the same language iff their keys are equal. Groups are
    validated (canonical codes, no code in two groups) and normalised on construction: the
    representative first, the other members sorted, groups sorted by representative, so equal
    groupings compare equal.
    """

    groups: tuple[tuple[str, ...], ...] = ()
    _keys: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        normalised = []
        for i, group in enumerate(self.groups):
            if isinstance(group, str) or not isinstance(group, Iterable):
                raise ConfigError(f"language group {i} must be a list of codes, got {group!r}")
            members = list(group)
            if not members:
                raise ConfigError(f"language group {i} is empty")
            for code in members:
                if not isinstance(code, str) or not is_canonical(code):
                    hint = _canonical_hint(code)
                    raise ConfigError(
                        f"language group {i}: {code!r} is not a canonical language code{hint}"
                    )
                if code in seen:
                    where = "twice" if seen[code] == i else f"in groups {seen[code]} and {i}"
                    raise ConfigError(f"language code {code!r} appears {where}")
                seen[code] = i
            normalised.append((members[0], *sorted(members[1:])))
        normalised.sort(key=lambda g: g[0])
        object.__setattr__(self, "groups", tuple(normalised))
        object.__setattr__(self, "_keys", {code: g[0] for g in normalised for code in g})

    @classmethod
    def from_groups(cls, groups: Iterable[Iterable[str]]) -> LanguageEquivalence:
        """Build from groups of canonical codes, the representative first: ``[["no", "nb", "nn"]]``."""
        if isinstance(groups, (str, Mapping)):
            raise ConfigError(f"language groups must be a list of lists of codes, got {groups!r}")
        # Each group is checked (and a lone string rejected) in __post_init__.
        return cls(cast("tuple[tuple[str, ...], ...]", tuple(groups)))

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Iterable[str]]) -> LanguageEquivalence:
        """Build from ``{representative: [other members]}``, the form :meth:`to_dict` writes."""
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"language groups must be a mapping, got {mapping!r}")
        groups = []
        for rep, members in mapping.items():
            if isinstance(members, str) or not isinstance(members, Iterable):
                raise ConfigError(f"language group {rep!r} must list codes, got {members!r}")
            groups.append((rep, *members))
        return cls(tuple(groups))

    @classmethod
    def from_json(cls, text: str) -> LanguageEquivalence:
        """Build from the JSON that :meth:`to_json` writes."""
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"language groups are not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, list[str]]:
        """``{representative: [other members]}``, for a config file."""
        return {g[0]: list(g[1:]) for g in self.groups}

    def to_json(self) -> str:
        """The :meth:`to_dict` form as JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def key(self, code: str) -> str:
        """The representative of ``code``'s group; ``code`` itself if it is in no group.

        ``code`` should be canonical; nothing is validated here (``'und'`` passes through).
        """
        return self._keys.get(code, code)

    def same(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` count as the same language."""
        return self.key(a) == self.key(b)

    def group(self, code: str) -> tuple[str, ...]:
        """All codes that count as ``code``'s language, the representative first."""
        rep = self._keys.get(code)
        if rep is None:
            return (code,)
        return next(g for g in self.groups if g[0] == rep)

    def merge(self, codes: Iterable[str]) -> LanguageEquivalence:
        """A copy in which ``codes`` and their groups are one group, represented by ``codes[0]``'s key.

        ``DEFAULT_EQUIVALENCE.merge(["zh", "yue"])`` counts Cantonese as Chinese.
        """
        wanted = list(codes)
        if not wanted:
            return self
        for code in wanted:
            if not is_canonical(code):
                raise ConfigError(
                    f"{code!r} is not a canonical language code{_canonical_hint(code)}"
                )
        keys = {self.key(c) for c in wanted}
        rep = self.key(wanted[0])
        merged: list[str] = [rep]
        kept = []
        for g in self.groups:
            if g[0] in keys:
                merged.extend(c for c in g if c != rep)
            else:
                kept.append(g)
        merged.extend(c for c in wanted if c not in merged)
        return LanguageEquivalence((*kept, tuple(merged)))


def _canonical_hint(code: object) -> str:
    """`` (use 'he')`` when ``code`` has a canonical form, else nothing."""
    try:
        return f" (use {canonical(str(code))!r})"
    except ConfigError:
        return ""


DEFAULT_EQUIVALENCE = LanguageEquivalence(DEFAULT_GROUPS)
NO_EQUIVALENCE = LanguageEquivalence()


def candidate_languages(codes: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """The candidate languages a user gave (``"en,es,fr"`` or a list), as sorted canonical codes
    without repeats; None for none given.

    Raises :class:`ConfigError` naming a code that is no language, and for an empty set.
    """
    if codes is None:
        return None
    given = codes.split(",") if isinstance(codes, str) else list(codes)
    found = set()
    for code in given:
        if str(code).strip():
            try:
                found.add(canonical(str(code)))
            except ConfigError as exc:
                raise ConfigError(f"--languages: {exc}") from exc
    if not found:
        raise ConfigError(f"--languages names no language: {codes!r}")
    return tuple(sorted(found))


def candidate_labels(
    labels: Iterable[str],
    candidates: Iterable[str],
    equivalence: LanguageEquivalence = DEFAULT_EQUIVALENCE,
) -> tuple[int, ...]:
    """The positions in a model's ``labels`` that answer one of ``candidates``: a label counts
    when it is the same language under ``equivalence`` (candidate ``no`` keeps a model's ``no``,
    ``nb`` and ``nn``)."""
    wanted = {equivalence.key(c) for c in candidates}
    return tuple(i for i, label in enumerate(labels) if equivalence.key(label) in wanted)
