"""One language-code space: canonical codes, model label maps and equivalence groups."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.whisper.tokenization_whisper import LANGUAGES as WHISPER_LANGUAGES

from lidframe import ConfigError
from lidframe.languages import (
    DEFAULT_EQUIVALENCE,
    DEFAULT_GROUPS,
    NO_EQUIVALENCE,
    VOXLINGUA107_LABELS,
    LanguageEquivalence,
    canonical,
    is_canonical,
    voxlingua_to_canonical,
    whisper_to_canonical,
)

WHISPER_CODES = sorted(WHISPER_LANGUAGES)
VOXLINGUA_CODES = [label.split(":")[0] for label in VOXLINGUA107_LABELS]

# --- canonical ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("en", "en"),
        ("EN", "en"),
        (" en ", "en"),
        ("eng", "en"),
        ("en-US", "en"),
        ("en_GB", "en"),
        ("deu", "de"),
        ("ger", "de"),
        # deprecated or non-ISO codes replaced
        ("jw", "jv"),
        ("iw", "he"),
        ("iw-IL", "he"),
        ("in", "id"),
        ("ji", "yi"),
        ("mo", "ro"),
        ("mol", "ro"),
        # overrides of langcodes' CLDR aliases
        ("tl", "tl"),
        ("tgl", "tl"),
        ("tl-PH", "tl"),
        ("fil", "fil"),
        ("fil-PH", "fil"),
        ("sh", "sh"),
        ("hbs", "sh"),
        ("sh-Latn", "sh"),
        ("cnr", "cnr"),
        ("sr-Latn", "sr"),
        # Norwegian
        ("no", "no"),
        ("nor", "no"),
        ("nb", "nb"),
        ("nob", "nb"),
        ("nn", "nn"),
        ("nno", "nn"),
        # Chinese
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("zh-TW", "zh"),
        ("zh-Hans", "zh"),
        ("zh-Hant-TW", "zh"),
        ("zho", "zh"),
        ("cmn", "cmn"),
        ("yue", "yue"),
        ("zh-yue", "yue"),
        # no ISO 639-1 code: the 639-3 code is the shortest
        ("haw", "haw"),
        ("sco", "sco"),
        ("ceb", "ceb"),
        ("war", "war"),
    ],
)
def test_canonical(tag, expected):
    assert canonical(tag) == expected
    assert is_canonical(expected)


@pytest.mark.parametrize("tag", ["", "   ", "xx", "zz", "klingonish", "123", "e n", "und", "x-foo"])
def test_unknown_codes_raise_config_error_naming_the_code(tag):
    with pytest.raises(ConfigError, match=repr(tag).replace("\\", "\\\\")):
        canonical(tag)
    assert not is_canonical(tag)


@pytest.mark.parametrize("code", ["EN", "iw", "jw", "en-US", "tgl", "xx", ""])
def test_is_canonical_rejects_non_canonical_forms(code):
    assert not is_canonical(code)


# --- Whisper -----------------------------------------------------------------------------------


def test_whisper_has_100_codes():
    assert len(WHISPER_CODES) == 100


@pytest.mark.parametrize("code", WHISPER_CODES)
def test_every_whisper_code_maps_to_a_canonical_code(code):
    out = whisper_to_canonical(code)
    assert is_canonical(out)
    assert out == (code if code != "jw" else "jv")


def test_whisper_codes_map_to_distinct_canonical_codes():
    mapped = [whisper_to_canonical(c) for c in WHISPER_CODES]
    assert len(set(mapped)) == len(mapped) == 100


def test_whisper_token_form_and_errors():
    assert whisper_to_canonical("<|jw|>") == "jv"
    with pytest.raises(ConfigError, match="'qq'"):
        whisper_to_canonical("qq")


# --- VoxLingua107 ------------------------------------------------------------------------------


def test_voxlingua_label_list_is_complete():
    assert len(VOXLINGUA107_LABELS) == 107
    assert len(set(VOXLINGUA_CODES)) == 107
    assert sorted(VOXLINGUA_CODES) == VOXLINGUA_CODES  # label_encoder.txt order
    for label in VOXLINGUA107_LABELS:
        code, name = label.split(": ")
        assert code.isalpha() and code.islower() and name.strip() == name and name
    for label in ("ab: Abkhazian", "bo: Tibetan", "gv: Manx", "ia: Interlingua", "ln: Lingala"):
        assert label in VOXLINGUA107_LABELS
    for label in ("sn: Shona", "iw: Hebrew", "jw: Javanese", "sco: Scots", "haw: Hawaiian"):
        assert label in VOXLINGUA107_LABELS
    assert "ceb: Cebuano" in VOXLINGUA107_LABELS and "war: Waray" in VOXLINGUA107_LABELS


@pytest.mark.parametrize("label", VOXLINGUA107_LABELS)
def test_every_voxlingua_label_maps_to_a_canonical_code(label):
    out = voxlingua_to_canonical(label)
    assert is_canonical(out)
    assert voxlingua_to_canonical(label.split(":")[0]) == out  # bare code


def test_voxlingua_labels_map_to_distinct_canonical_codes():
    mapped = [voxlingua_to_canonical(label) for label in VOXLINGUA107_LABELS]
    assert len(set(mapped)) == len(mapped) == 107


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("en: English", "en"),
        ("iw: Hebrew", "he"),
        ("jw: Javanese", "jv"),
        ("tl: Tagalog", "tl"),
        ("sco: Scots", "sco"),
        ("haw: Hawaiian", "haw"),
        ("ceb: Cebuano", "ceb"),
        ("war: Waray", "war"),
        ("no: Norwegian", "no"),
        ("nn: Norwegian Nynorsk", "nn"),
        ("zh: Chinese", "zh"),
        ("en", "en"),
        ("  iw:Hebrew ", "he"),
    ],
)
def test_voxlingua_specific_labels(label, expected):
    assert voxlingua_to_canonical(label) == expected


def test_voxlingua_unknown_label_names_the_label():
    with pytest.raises(ConfigError, match="'xx: Nowhere'"):
        voxlingua_to_canonical("xx: Nowhere")


# --- both models in one space ------------------------------------------------------------------


def test_model_label_sets_overlap_sensibly():
    whisper = {whisper_to_canonical(c) for c in WHISPER_CODES}
    vox = {voxlingua_to_canonical(label) for label in VOXLINGUA107_LABELS}
    both = whisper & vox
    assert {"en", "de", "jv", "he", "tl", "haw", "no", "nn", "zh", "sr", "hr", "bs"} <= both
    assert whisper - vox == {"yue"}  # Cantonese is Whisper's only language VoxLingua107 lacks
    assert vox - whisper == {"ab", "ceb", "eo", "gn", "gv", "ia", "sco", "war"}
    assert len(both) == 99
    assert voxlingua_to_canonical("iw: Hebrew") == whisper_to_canonical("he") == "he"
    assert voxlingua_to_canonical("jw: Javanese") == whisper_to_canonical("jw") == "jv"


# --- equivalence -------------------------------------------------------------------------------


def test_default_groups_are_valid_and_represented_by_their_first_code():
    for group in DEFAULT_GROUPS:
        for code in group:
            assert is_canonical(code), code
            assert DEFAULT_EQUIVALENCE.key(code) == group[0]


def test_norwegian_is_one_language_by_default():
    assert DEFAULT_EQUIVALENCE.key("nb") == DEFAULT_EQUIVALENCE.key("nn") == "no"
    assert DEFAULT_EQUIVALENCE.same("no", "nb") and DEFAULT_EQUIVALENCE.same("nb", "nn")
    assert not NO_EQUIVALENCE.same("nb", "nn")


def test_serbo_croatian_default_and_strict():
    assert DEFAULT_EQUIVALENCE.same("sr", "hr") and DEFAULT_EQUIVALENCE.same("bs", "sh")
    assert DEFAULT_EQUIVALENCE.key("hr") == "sh"
    assert not NO_EQUIVALENCE.same("sr", "hr")
    assert NO_EQUIVALENCE.key("hr") == "hr"


def test_other_default_groups():
    eq = DEFAULT_EQUIVALENCE
    assert eq.same("ms", "id") and eq.key("id") == "ms"
    assert eq.same("tl", "fil") and eq.key("fil") == "tl"
    assert eq.same("zh", "cmn") and eq.key("cmn") == "zh"
    assert not eq.same("zh", "yue")  # Cantonese distinct by default
    assert not eq.same("en", "sco") and not eq.same("hi", "ur") and not eq.same("da", "no")
    assert eq.key("en") == "en" and eq.key("und") == "und"  # no group: the code itself
    assert eq.group("nn") == ("no", "nb", "nn") and eq.group("en") == ("en",)


def test_merge_cantonese_into_chinese():
    merged = DEFAULT_EQUIVALENCE.merge(["zh", "yue"])
    assert merged.same("yue", "zh") and merged.key("yue") == "zh" and merged.key("cmn") == "zh"
    assert merged.same("nb", "nn")  # other groups kept
    assert not DEFAULT_EQUIVALENCE.same("zh", "yue")  # the original is unchanged
    assert NO_EQUIVALENCE.merge(["no", "nb"]).key("nb") == "no"
    assert DEFAULT_EQUIVALENCE.merge([]) is DEFAULT_EQUIVALENCE
    with pytest.raises(ConfigError, match="'iw'.*'he'"):
        DEFAULT_EQUIVALENCE.merge(["iw", "yi"])


def test_from_groups_builds_a_user_equivalence():
    eq = LanguageEquivalence.from_groups([["no", "nb", "nn"], ["hi", "ur"]])
    assert eq.same("hi", "ur") and eq.key("ur") == "hi" and eq.key("nn") == "no"
    assert not eq.same("sr", "hr")
    # Normalised: group order and member order (after the representative) do not matter.
    again = LanguageEquivalence.from_groups([("hi", "ur"), ("no", "nn", "nb")])
    assert eq == again and hash(eq) == hash(again)
    assert LanguageEquivalence.from_groups([]) == NO_EQUIVALENCE


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([["no", "nb"], ["nb", "nn"]], "'nb' appears in groups 0 and 1"),
        ([["no", "nb", "no"]], "'no' appears twice"),
        ([["iw", "yi"]], "'iw' is not a canonical language code \\(use 'he'\\)"),
        ([["EN", "sco"]], "'EN' is not a canonical"),
        ([["en-US", "en"]], "'en-US' is not a canonical"),
        ([["xx", "en"]], "'xx' is not a canonical"),
        ([["tgl", "fil"]], "'tgl' is not a canonical"),
        ([[]], "group 0 is empty"),
        (["no"], "must be a list of codes"),
        ([["no", 3]], "3 is not a canonical"),
        ("no", "list of lists"),
    ],
)
def test_from_groups_rejects_bad_groups(groups, message):
    with pytest.raises(ConfigError, match=message):
        LanguageEquivalence.from_groups(groups)


def test_dict_and_json_round_trip():
    for eq in (DEFAULT_EQUIVALENCE, NO_EQUIVALENCE, DEFAULT_EQUIVALENCE.merge(["zh", "yue"])):
        assert LanguageEquivalence.from_dict(eq.to_dict()) == eq
        assert LanguageEquivalence.from_json(eq.to_json()) == eq
    assert DEFAULT_EQUIVALENCE.to_dict()["no"] == ["nb", "nn"]
    assert LanguageEquivalence.from_dict({"no": ["nb", "nn"]}).key("nn") == "no"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('[["no", "nb"]]', "must be a mapping"),
        ('{"no": "nb"}', "group 'no' must list codes"),
        ('{"no": ["nb"], "nn": ["nb"]}', "'nb' appears in groups"),
        ('{"iw": []}', "'iw' is not a canonical"),
    ],
)
def test_from_json_rejects_bad_config(text, message):
    with pytest.raises(ConfigError, match=message):
        LanguageEquivalence.from_json(text)


def test_equivalence_pickles():
    # Consensus ships its config (and so the equivalence) to Dask workers.
    eq = pickle.loads(pickle.dumps(DEFAULT_EQUIVALENCE))
    assert eq == DEFAULT_EQUIVALENCE and eq.key("nn") == "no"


# --- properties --------------------------------------------------------------------------------

ALL_CODES = sorted(
    {whisper_to_canonical(c) for c in WHISPER_CODES}
    | {voxlingua_to_canonical(label) for label in VOXLINGUA107_LABELS}
    | {code for group in DEFAULT_GROUPS for code in group}
)
codes = st.sampled_from(ALL_CODES)


@st.composite
def equivalences(draw):
    """Random disjoint groups over ALL_CODES, a random member first."""
    chosen = draw(st.lists(codes, unique=True, max_size=30))
    cuts = sorted(draw(st.lists(st.integers(0, len(chosen)), max_size=6)))
    groups, start = [], 0
    for cut in [*cuts, len(chosen)]:
        if cut > start:
            groups.append(chosen[start:cut])
            start = cut
    return LanguageEquivalence.from_groups(groups)


any_equivalence = st.one_of(st.just(DEFAULT_EQUIVALENCE), st.just(NO_EQUIVALENCE), equivalences())


@settings(max_examples=200, deadline=None)
@given(eq=any_equivalence, a=codes, b=codes, c=codes)
def test_same_is_an_equivalence_relation(eq, a, b, c):
    assert eq.same(a, a)
    assert eq.same(a, b) == eq.same(b, a)
    if eq.same(a, b) and eq.same(b, c):
        assert eq.same(a, c)


@settings(max_examples=200, deadline=None)
@given(eq=any_equivalence, a=codes)
def test_key_is_idempotent_and_in_the_group(eq, a):
    key = eq.key(a)
    assert eq.key(key) == key
    assert eq.same(a, key)
    assert eq.group(a)[0] == key and a in eq.group(a)
    assert is_canonical(key)


@settings(max_examples=100, deadline=None)
@given(eq=equivalences())
def test_round_trip_and_merge_properties(eq):
    assert LanguageEquivalence.from_json(eq.to_json()) == eq
    merged = eq.merge(["zh", "yue"])
    assert merged.same("zh", "yue")
    for a in ALL_CODES[:40]:
        for b in ALL_CODES[:40]:
            if eq.same(a, b):
                assert merged.same(a, b)  # merging only coarsens


@settings(max_examples=200, deadline=None)
@given(tag=st.sampled_from(ALL_CODES + WHISPER_CODES + VOXLINGUA_CODES))
def test_canonical_is_idempotent(tag):
    assert canonical(canonical(tag)) == canonical(tag)
    assert canonical(tag.upper()) == canonical(tag)
