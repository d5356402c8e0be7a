"""One declaration per setting (lidframe.settings): a setting declared once appears, with its name,
type, default and help, both as a ``lidframe`` option and as a keyword of the Python API."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from dataclasses import dataclass

import pytest

from lidframe.cli._settings import add_settings, settings_from
from lidframe.settings import declared, identity, keyword_parameters, setting, settings_doc


@dataclass(frozen=True)
class Inner:
    depth: int = setting(3, identity=True, help="how deep; see {rate}")
    hidden: float = setting(0.5, identity=True, cli=False, help="Python only")


@dataclass(frozen=True)
class Toy:
    """A configuration as a later setting would be added to RunConfig: one line each."""

    rate: float = setting(1.5, identity=True, help="how fast, 100% or less")
    name: str | None = setting(None, identity=False, metavar="WHO", help="who (default: anyone)")
    loud: bool = setting(True, identity=False, help="the noise")
    dry: bool = setting(False, identity=False, help="do nothing")
    kind: str = setting("a", identity=True, flag="--sort", choices=("a", "b"), help="which")
    inner: Inner = setting(identity=True, factory=Inner, help="the inner part")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toy")
    add_settings(parser, Toy)
    return parser


def test_a_declared_setting_becomes_an_option_with_its_type_default_and_help():
    parser = _parser()
    by_flag = {o: a for a in parser._actions for o in a.option_strings}
    assert set(by_flag) == {"-h", "--help", "--rate", "--name", "--no-loud", "--dry", "--sort",
                            "--depth"}  # fmt: skip
    assert by_flag["--rate"].type is float and by_flag["--rate"].default == 1.5
    assert by_flag["--rate"].help == "how fast, 100%% or less"  # argparse formats help with %
    assert by_flag["--name"].metavar == "WHO" and by_flag["--name"].type is str
    assert by_flag["--sort"].choices == ("a", "b") and by_flag["--sort"].dest == "kind"
    assert by_flag["--no-loud"].help == "turn off the noise"
    assert by_flag["--depth"].help == "how deep; see --rate"  # another setting, as a flag
    assert "100% or less" in parser.format_help()


def test_options_read_back_as_the_configuration():
    parser = _parser()
    assert Toy(**settings_from(parser.parse_args([]), Toy)) == Toy()
    argv = ["--rate", "2", "--name", "x", "--no-loud", "--dry", "--sort", "b", "--depth", "9"]
    given = Toy(**settings_from(parser.parse_args(argv), Toy))
    assert given == Toy(rate=2.0, name="x", loud=False, dry=True, kind="b", inner=Inner(depth=9))
    with pytest.raises(SystemExit):
        parser.parse_args(["--sort", "c"])


def test_a_declared_setting_becomes_a_keyword_with_its_type_default_and_help():
    params = {p.name: p for p in keyword_parameters(Toy, skip=("dry",))}
    assert list(params) == ["rate", "name", "loud", "kind", "inner"]
    assert params["rate"].kind is inspect.Parameter.KEYWORD_ONLY
    assert (params["rate"].annotation, params["rate"].default) == ("float", 1.5)
    assert repr(params["inner"].default) == "Inner()"
    doc = settings_doc(Toy)
    assert "    * ``rate: float = 1.5``: how fast, 100% or less" in doc
    assert "    * ``kind: str = 'a'``: which" in doc
    assert "      * ``depth: int = 3``: how deep; see ``rate``" in doc  # nested, indented
    assert "      * ``hidden: float = 0.5``: Python only" in doc


def test_a_field_without_the_declaration_is_refused():
    @dataclass(frozen=True)
    class Undeclared:
        plain: int = dataclasses.field(default=1)

    with pytest.raises(TypeError, match="Undeclared.plain is not declared"):
        declared(Undeclared)
    with pytest.raises(TypeError, match="does not declare whether it changes results"):
        identity(Undeclared())


def test_help_naming_an_unknown_setting_is_refused():
    @dataclass(frozen=True)
    class Typo:
        a: int = setting(1, identity=True, help="see {b}")

    with pytest.raises(KeyError, match="b"):
        settings_doc(Typo)
    with pytest.raises(KeyError, match="b"):
        add_settings(argparse.ArgumentParser(), Typo)
