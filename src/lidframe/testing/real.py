"""Real recordings of people speaking, with a known language and a licence that allows use: a labelled
manifest built from Debian packages, so the project can rebuild it anywhere the packages install.

No public speech corpus is reachable where lidframe is built and tested, and every figure chosen on
espeak-ng speech alone is a figure about synthetic voices. Debian's archive ships real recordings:

``asterisk-core-sounds-{en,es,fr}-wav``
    telephone prompts read by professional voice talents (Allison Smith for en and es-MX, June
    Wallack for fr-CA), 8 kHz mono WAV, CC-BY-SA-3.0. The prompt set is parallel across languages
    (the same file names say the same thing), so the words said are controlled; many are sentences,
    many are digits, letters and single words. The ``-g722`` packages hold the same prompts at
    16 kHz (G.722), which measures what 8 kHz costs. Their non-speech files (digital silence, tones,
    and ``tt-monkeys``, a recording of monkeys) are rows labelled ``und``.
``ktuberling-data``
    single spoken words in about 20 languages (0.5-2 s, GPL-2+): a stress test for very short input,
    not a fair accuracy test.

:func:`real_speech_corpus` lists what is installed (nothing is copied or downloaded) and writes a
Parquet manifest whose rows carry, beside ``id``, ``audio`` and ``label``: ``source`` (the
package), ``speaker``, ``kind`` (``prompt``, ``digits``, ``letters``, ``word``, ``non-speech``),
``seconds``, ``sample_rate``, ``encoding`` and ``split``. The split into development and test halves
is a seeded hash of the prompt's name, not of the file, so a prompt said in several languages (and at
both rates) falls in one half: nothing tuned on the development half has heard the test half's
sentences. Each source's package, version, licence and attribution are in the file's key-value
metadata under :data:`METADATA_KEY` (:func:`corpus_sources` reads them back).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

__all__ = [
    "ASTERISK_VOICES",
    "METADATA_KEY",
    "PACKAGES",
    "CorpusSource",
    "corpus_sources",
    "real_speech_corpus",
]

# Key of the manifest's Parquet key-value metadata that holds each source's package and licence.
METADATA_KEY = "lidframe_corpus"
ASTERISK_ROOT = Path("/usr/share/asterisk/sounds")
KTUBERLING_ROOT = Path("/usr/share/ktuberling/sounds")
# Asterisk's voice folders: language, speaker, and the package of each encoding.
ASTERISK_VOICES = {
    "en_US_f_Allison": ("en", "Allison Smith", "en"),
    "es_MX_f_Allison": ("es", "Allison Smith", "es"),
    "fr_CA_f_June": ("fr", "June Wallack", "fr"),
}
# The Debian packages the corpus is built from (what `scripts/setup.sh --test` installs).
PACKAGES = (
    *(
        f"asterisk-core-sounds-{p}-{e}"
        for _, _, p in ASTERISK_VOICES.values()
        for e in ("wav", "g722")
    ),
    "ktuberling-data",
)
# Asterisk prompts that are not speech: tones, digital silence (the ``silence/`` folder) and the
# monkeys of ``tt-monkeys`` (an animal recording). The confbridge tones and the monkeys were found
# by measuring, not by name: the same sound in every language's package, and no speech found by
# silero-vad in the monkeys.
_ASTERISK_NON_SPEECH = {
    "beep",
    "beeperr",
    "ascending-2tone",
    "descending-2tone",
    "confbridge-join",
    "confbridge-leave",
    "tt-monkeys",
}
_ASTERISK_KINDS = {"digits": "digits", "letters": "letters", "phonetic": "letters"}
_ATTRIBUTION = {
    "en": "Recorded by Allison Smith (theivrvoice.com); Digium, Inc.",
    "es": "Recorded by Allison Smith (theivrvoice.com); Digium, Inc.",
    "fr": "Recorded by June Wallack (junewallack.com), translated by Clod Patry, Kristopher "
    "Lalletti and June Wallack; Digium, Inc., Unlimitel, BGM Informatique",
}


@dataclass(frozen=True)
class CorpusSource:
    """One Debian package of the corpus, as the manifest's metadata records it."""

    package: str
    version: str
    licence: str
    attribution: str
    copyright: str  # the package's copyright file, where the full licence text is


def real_speech_corpus(
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    test_share: float = 0.5,
    sources: Sequence[str] = ("asterisk", "ktuberling"),
    encodings: Sequence[str] = ("wav",),
    min_seconds: float = 0.0,
) -> Path:
    """Write the manifest of the installed recordings to ``out`` (a ``.parquet`` file) and return it.

    ``sources``: ``asterisk`` and/or ``ktuberling``. ``encodings``: the asterisk prompts as ``wav``
    (8 kHz) and/or ``g722`` (16 kHz). ``min_seconds``: leave out speech shorter than this (the
    non-speech files stay). Raises ``FileNotFoundError`` naming the packages to install when a
    source asked for is not installed.
    """
    if not 0.0 <= test_share <= 1.0:
        raise ValueError(f"test_share must be in [0, 1], got {test_share!r}")
    unknown = set(sources) - {"asterisk", "ktuberling"}
    if unknown or set(encodings) - {"wav", "g722"}:
        raise ValueError(f"unknown sources {sorted(unknown)} or encodings {list(encodings)}")
    rows: list[dict[str, Any]] = []
    used: dict[str, CorpusSource] = {}
    if "asterisk" in sources:
        rows += _asterisk_rows(encodings, used)
    if "ktuberling" in sources:
        rows += _ktuberling_rows(used)
    frame = pd.DataFrame(rows)
    speech = frame["kind"] != "non-speech"
    frame = frame[~speech | (frame["seconds"] >= min_seconds)].copy()
    frame["split"] = [_split(name, seed, test_share) for name in frame.pop("prompt")]
    frame = frame.sort_values(["source", "label", "id"]).reset_index(drop=True)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    record = {"seed": seed, "test_share": test_share, "sources": [asdict(s) for s in used.values()]}
    metadata = {**(table.schema.metadata or {}), METADATA_KEY.encode(): json.dumps(record).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def corpus_sources(manifest: str | os.PathLike[str]) -> list[CorpusSource]:
    """Each source's package, version, licence and attribution, as :func:`real_speech_corpus`
    recorded them in the manifest."""
    metadata = pq.read_schema(manifest).metadata or {}
    record = json.loads(metadata[METADATA_KEY.encode()])
    return [CorpusSource(**s) for s in record["sources"]]


def _asterisk_rows(
    encodings: Iterable[str], used: dict[str, CorpusSource]
) -> Iterator[dict[str, Any]]:
    for voice, (label, speaker, package_code) in ASTERISK_VOICES.items():
        folder = ASTERISK_ROOT / voice
        for encoding in encodings:
            package = f"asterisk-core-sounds-{package_code}-{encoding}"
            files = sorted(folder.rglob(f"*.{encoding}")) if folder.is_dir() else []
            if not files:
                raise FileNotFoundError(
                    f"{folder}: no .{encoding} prompts; install the Debian package {package} "
                    f"(apt-get install --no-install-recommends {' '.join(PACKAGES)})"
                )
            used[package] = _source(package, "CC-BY-SA-3.0", _ATTRIBUTION[package_code])
            for path in files:
                relative = path.relative_to(folder).with_suffix("")
                parts = relative.parts
                kind = _ASTERISK_KINDS.get(parts[0], "prompt") if len(parts) > 1 else "prompt"
                if parts[0] == "silence" or relative.name in _ASTERISK_NON_SPEECH:
                    kind = "non-speech"
                seconds, rate = _duration(path, encoding)
                yield {
                    "id": f"asterisk/{voice}/{relative.as_posix()}.{encoding}",
                    "audio": str(path),
                    "label": "und" if kind == "non-speech" else label,
                    "source": package,
                    "speaker": "none" if kind == "non-speech" else speaker,
                    "kind": kind,
                    "seconds": seconds,
                    "sample_rate": rate,
                    "encoding": encoding,
                    "prompt": f"asterisk/{relative.as_posix()}",
                }


def _ktuberling_rows(used: dict[str, CorpusSource]) -> Iterator[dict[str, Any]]:
    package = "ktuberling-data"
    themes = sorted(KTUBERLING_ROOT.glob("*.soundtheme")) if KTUBERLING_ROOT.is_dir() else []
    if not themes:
        raise FileNotFoundError(
            f"{KTUBERLING_ROOT}: no sound themes; install the Debian package {package}"
        )
    used[package] = _source(package, "GPL-2+", "KTuberling's translators (KDE)")
    for theme in themes:
        code = theme.stem
        if "@" in code:
            continue  # a script or dialect variant of a language listed already (sr@latin)
        root = ET.parse(theme).getroot()
        seen: set[Path] = set()
        for sound in root.iter("sound"):
            path = KTUBERLING_ROOT / sound.attrib["file"]
            if path in seen or not path.is_file():
                continue  # listed twice, or a recording the language never shipped
            seen.add(path)
            seconds, rate = _duration(path, path.suffix.lstrip("."))
            yield {
                "id": f"ktuberling/{code}/{path.stem}",
                "audio": str(path),
                "label": code,
                "source": package,
                "speaker": f"ktuberling-{code}",
                "kind": "word",
                "seconds": seconds,
                "sample_rate": rate,
                "encoding": path.suffix.lstrip("."),
                "prompt": f"ktuberling/{sound.attrib['name']}",  # the same word in every language
            }


def _duration(path: Path, encoding: str) -> tuple[float, int]:
    """Seconds and sample rate from the file's header (G.722 is raw: 16 kHz, 8,000 bytes a second)."""
    if encoding == "g722":
        return round(path.stat().st_size / 8000.0, 3), 16_000
    info = sf.info(str(path))
    return round(float(info.duration), 3), int(info.samplerate)


def _split(prompt: str, seed: int, test_share: float) -> str:
    digest = hashlib.blake2b(f"{seed}\x1f{prompt}".encode(), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "big") / 2**64 < test_share else "dev"


def _source(package: str, licence: str, attribution: str) -> CorpusSource:
    try:
        version = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        version = ""  # not a Debian system, or the files came another way
    copyright = Path("/usr/share/doc") / package / "copyright"
    return CorpusSource(package, version, licence, attribution, str(copyright))
