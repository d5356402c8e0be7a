"""Run settings as Python and the command line give them: an unknown keyword is answered with the
setting it is nearest to, and ``help(lidframe.run)`` lists every setting's type and default."""

from __future__ import annotations

import dataclasses

import pytest

import lidframe
from lidframe import ConfigError
from lidframe.job import RunConfig


@pytest.mark.parametrize(
    ("keyword", "hint"),
    [
        ("min_speech", "speech=SpeechConfig(min_speech=...)"),
        ("consensus", "consensus_policy=..."),
        ("max_window", "audio=AudioConfig(max_window=...)"),
        ("partition_row", "partition_rows=..."),
        ("no_vad", "speech=SpeechConfig(vad=False)"),
        ("decode_timeout", "audio=AudioConfig(timeout=...)"),  # a flag, spelled as in Python
        ("no_progress", "progress=False"),
        ("no_db", "db=False"),
    ],
)
def test_an_unknown_keyword_names_the_setting_it_is_nearest_to(tmp_path, keyword, hint):
    with pytest.raises(ConfigError) as refused:
        lidframe.run(tmp_path / "m.csv", tmp_path / "out", **{keyword: 1})
    assert str(refused.value) == f"unknown setting {keyword!r}: did you mean {hint}?"
    assert not (tmp_path / "out").exists()  # refused before anything was touched


def test_an_unknown_keyword_near_nothing_lists_the_settings():
    first = r"unknown setting 'zzz' \(the settings: allow_mixed_environments, audio, "
    with pytest.raises(ConfigError, match=first):
        RunConfig.of(zzz=1)


def test_help_of_run_lists_every_setting_with_its_type_and_default():
    doc = lidframe.run.__doc__ or ""
    for f in dataclasses.fields(RunConfig):
        assert f"    * ``{f.name}: {f.type} = " in doc, f.name
    assert "* ``partition_rows: int = 128``" in doc
    assert "* ``speech: SpeechConfig = SpeechConfig()``" in doc
