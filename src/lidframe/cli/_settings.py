"""Command-line options made from the settings' one declaration (:mod:`lidframe.settings`), and
the settings read back from the parsed options.

A setting becomes an option by its declaration alone: flag, type, default, metavar, choices and
help, with the names other settings' help mentions spelled as flags. A few settings take a
convenience their declaration cannot say; each is written here once (:data:`_SPECIAL`):

* ``models``: ``-m a,b -m c`` (:func:`~lidframe.cli._options.models_argument`);
* ``storage_options``: ``--storage-option KEY=VALUE``, repeatable, VALUE read as JSON when it is;
* ``cascade``: ``--cascade`` (the measured threshold) and ``--escalate-below P``;
* ``db``: ``--db URL``, and ``--no-db`` for ``db=False``.

So adding a setting to :class:`~lidframe.RunConfig` adds its ``lidframe run`` option, and
``lidframe run`` passes it on (:func:`settings_from`) without another line here.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lidframe.cli._options import models_argument
from lidframe.errors import ConfigError, LidframeError
from lidframe.settings import Declared, declared, render_help, walk

__all__ = ["add_settings", "parse_storage_options", "settings_from"]


# ``lidframe run --help`` in two groups: which options make another job.
_GROUPS = {
    True: (
        "settings that change results",
        "the job id is derived from these: with other values it is another job (any --dtype "
        "counts as float32, which it is checked against first)",
    ),
    False: (
        "settings of how the job runs",
        "a job resumes with other values of these",
    ),
}


def add_settings(
    parser: argparse.ArgumentParser,
    config: type,
    names: Iterable[str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    grouped: bool = False,
) -> None:
    """One option per setting of ``config`` that the command line takes (those ``names`` only,
    when given; a nested configuration's settings by its name take all of its own).

    ``overrides`` change one setting's ``flag``, ``default`` or ``help`` for this command (``lidframe
    check`` checks ``bfloat16`` by default where a job runs ``auto``). ``grouped``: the help shows
    the settings that change results apart from the others.
    """
    settings = declared(config)
    flags = {s.name: s.flag for s in walk(settings) if s.flag}
    groups: dict[bool, Any] = {}

    def target(s: Declared) -> Any:
        if not grouped:
            return parser
        if s.identifying not in groups:
            groups[s.identifying] = parser.add_argument_group(*_GROUPS[s.identifying])
        return groups[s.identifying]

    for s in _chosen(settings, names):
        given = dict((overrides or {}).get(s.name, {}))
        text = render_help(given.pop("help", s.help), lambda name: _flag(flags, name))
        if s.name in _SPECIAL:
            _SPECIAL[s.name].add(target(s), s, text, given)
        elif s.config is not None:  # a nested configuration: its own settings
            for f in s.fields:
                if f.flag:  # its help may name another configuration's (--max-window)
                    nested = render_help(f.help, lambda name: _flag(flags, name))
                    _add(target(f), f, nested, {})
        else:
            _add(target(s), s, text, given)


def settings_from(
    args: argparse.Namespace, config: type, names: Iterable[str] | None = None
) -> dict[str, Any]:
    """The settings the options of :func:`add_settings` gave, as ``config``'s keywords (nested
    configurations made of theirs)."""
    out: dict[str, Any] = {}
    for s in _chosen(declared(config), names):
        if s.config is not None:
            out[s.name] = s.config(**{f.name: _read(args, f) for f in s.fields if f.flag})
        else:
            out[s.name] = _read(args, s)
    return out


def parse_storage_options(pairs: Sequence[str]) -> dict[str, object]:
    """``KEY=VALUE`` pairs; VALUE is parsed as JSON when it can be (numbers, booleans, objects)."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LidframeError(f"--storage-option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _chosen(settings: tuple[Declared, ...], names: Iterable[str] | None) -> list[Declared]:
    """The settings that have options (a nested configuration: when one of its own has), those
    named only when ``names`` is given; an unknown name is a ``KeyError``."""
    by_name = {s.name: s for s in settings}
    if names is None:
        return [s for s in settings if s.flag or any(f.flag for f in s.fields)]
    return [by_name[name] for name in names]


def _dest(s: Declared) -> str:
    # Nested settings by their path (speech.min_speech): a name may recur in two configurations.
    return ".".join(s.path)


def _flag(flags: Mapping[str, str | None], name: str) -> str:
    if name not in flags:
        raise KeyError(f"a setting's help names {{{name}}}, which has no command-line option")
    return str(flags[name])


def _add(parser: Any, s: Declared, text: str, given: Mapping[str, Any]) -> None:
    """``s``'s option on ``parser`` (a parser or one of its argument groups)."""
    flag = given.get("flag", s.flag)
    default = given.get("default", s.default)
    text = text.replace("%", "%%")  # argparse formats help with %
    if s.cli_type is bool:
        action = "store_false" if default else "store_true"
        if default:
            text = f"turn off {text}"
        parser.add_argument(flag, dest=_dest(s), action=action, default=default, help=text)
        return
    metavar = s.metavar
    if metavar is None and s.choices is None:
        metavar = flag.lstrip("-").upper().replace("-", "_")
    parser.add_argument(
        flag,
        dest=_dest(s),
        type=s.cli_type,
        default=default,
        metavar=metavar,
        choices=s.choices,
        help=text,
    )


def _read(args: argparse.Namespace, s: Declared) -> Any:
    special = _SPECIAL.get(s.name)
    if special is not None and special.read is not None:
        return special.read(args, s)
    return getattr(args, _dest(s))


@dataclass(frozen=True)
class _Special:
    """A setting's option that its declaration cannot say: how to add it, how to read it back
    (None: by its name, as any other)."""

    add: Callable[[argparse.ArgumentParser, Declared, str, dict[str, Any]], None]
    read: Callable[[argparse.Namespace, Declared], Any] | None = None


def _add_models(
    parser: argparse.ArgumentParser, s: Declared, text: str, given: dict[str, Any]
) -> None:
    default = given.get("default", s.default)
    models_argument(parser, list(default) if default else None, given.get("what", "models to run"))


def _add_storage_options(
    parser: argparse.ArgumentParser, s: Declared, text: str, given: dict[str, Any]
) -> None:
    parser.add_argument(
        str(s.flag),
        dest=s.name,
        action="append",
        default=[],
        metavar=s.metavar,
        help=f"{text} (KEY=VALUE, repeatable)".replace("%", "%%"),
    )


def _add_cascade(
    parser: argparse.ArgumentParser, s: Declared, text: str, given: dict[str, Any]
) -> None:
    parser.add_argument(
        "--cascade",
        action="store_true",
        help="run the models in the order given, each only on the rows the ones before left "
        "below --escalate-below consensus support (cheap model first)",
    )
    parser.add_argument(
        "--escalate-below",
        type=float,
        default=None,
        metavar="P",
        help="with --cascade: send a row on while its consensus support is below P "
        "(default 0.9, see benchmarks/RESULTS.md)",
    )


def _read_cascade(args: argparse.Namespace, s: Declared) -> float | None:
    if args.escalate_below is not None and not args.cascade:
        raise ConfigError("--escalate-below applies only with --cascade")
    if not args.cascade:
        return None
    from lidframe.consensus import ESCALATE_BELOW

    return ESCALATE_BELOW if args.escalate_below is None else float(args.escalate_below)


def _add_db(parser: argparse.ArgumentParser, s: Declared, text: str, given: dict[str, Any]) -> None:
    parser.add_argument("--db", default=None, help=text.replace("%", "%%"))
    if given.get("off_switch", True):
        parser.add_argument(
            "--no-db", action="store_true", help="no job database: no resume, no exactly-once"
        )


def _read_db(args: argparse.Namespace, s: Declared) -> Any:
    return False if getattr(args, "no_db", False) else args.db


_SPECIAL = {
    "models": _Special(_add_models),
    "storage_options": _Special(
        # None when none is given: the declared default, as Python's
        _add_storage_options,
        lambda args, s: parse_storage_options(args.storage_options) or None,
    ),
    "cascade": _Special(_add_cascade, _read_cascade),
    "db": _Special(_add_db, _read_db),
}
