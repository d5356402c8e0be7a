"""Settings declared once: each field of a run's configuration carries everything both interfaces
need, and whether it changes results.

A field made with :func:`setting` declares:

* ``identity``: ``True`` (its value is part of the job's identity), ``False`` (speed, limits on
  waiting, credentials: a job can resume with another value), or a function giving the value to
  record (a calibration file -> its fitted parameters). :func:`identity` walks a configuration
  (dataclasses nest) and returns the identifying part, which :mod:`lidframe.job` hashes into the
  job id;
* ``help``: one line for users, shown by ``lidframe run --help`` and ``help(lidframe.run)``.
  ``{name}`` in it names another setting as each interface spells it (``--max-window`` on the
  command line, ``max_window`` in Python);
* how the command line spells it: ``flag`` (default ``--name-with-dashes``; a switch
  ``--no-name`` for a ``bool`` that is on by default), ``metavar``, ``choices``, or ``cli=False``
  for a setting Python alone takes.

The command line's options (:mod:`lidframe.cli`) and :func:`lidframe.run`'s keywords, types,
defaults and help (:func:`settings_doc`, :func:`keyword_parameters`) are made from these fields by
:func:`declared`, so the two cannot drift apart. A field without the declaration is refused when
the class is used, so a new setting cannot be added without deciding whether it changes results and
what to tell users. This is the pattern of fairseq's and Hugging Face's dataclass arguments
(``field(metadata={"help": ...})``), kept in the project: tyro and simple_parsing would prefix
nested settings (``--speech.min-speech``) and own the whole parser, where lidframe's flags are
stable names with a few conveniences (``--no-vad``, ``--consensus``, ``--storage-option K=V``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Declared",
    "declared",
    "identity",
    "keyword_parameters",
    "render_help",
    "setting",
    "settings_doc",
    "walk",
]

_KEY = "lidframe.identity"
_OMIT = "lidframe.identity.omit_default"
_HELP = "lidframe.help"
_CLI = "lidframe.cli"  # (flag or None, metavar, choices), or None: Python only


def setting(
    default: Any = dataclasses.MISSING,
    *,
    identity: bool | Callable[[Any], Any],
    help: str,
    factory: Callable[[], Any] | None = None,
    omit_default: bool = False,
    cli: bool = True,
    flag: str | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field declaring whether it is part of a job's identity, its help, and how the
    command line spells it (see the module's docstring).

    ``omit_default``: an identifying setting added after jobs were started leaves the identity
    untouched at its default, so those jobs keep their ids (and resume).
    """
    metadata = {
        _KEY: identity,
        _OMIT: omit_default,
        _HELP: " ".join(help.split()),
        _CLI: (flag, metavar, choices) if cli else None,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Declared:
    """One declared setting, as both interfaces read it."""

    name: str
    # Where it sits: ("speech", "min_speech") for a field of a nested configuration.
    path: tuple[str, ...]
    # The annotation as written (``int | None``) and as resolved (for the command line's type).
    annotation: str
    type: Any
    # The default value (a nested configuration: its default instance).
    default: Any
    help: str
    # Whether its value is part of the job's identity (another value: another job).
    identifying: bool
    # The command line's spelling; None: Python only.
    flag: str | None
    metavar: str | None
    choices: tuple[str, ...] | None
    # A nested configuration's class and its own settings; None for a plain value.
    config: type | None
    fields: tuple[Declared, ...]

    @property
    def cli_type(self) -> type:
        """What the command line parses its text into: ``int``, ``float``, ``bool`` or ``str``
        (``X | None`` as ``X``; anything else as text the configuration converts)."""
        kinds = [t for t in typing.get_args(self.type) if t is not type(None)] or [self.type]
        if len(kinds) == 1 and kinds[0] in (int, float, bool, str):
            return typing.cast(type, kinds[0])
        return str


def declared(cls: type, path: tuple[str, ...] = ()) -> tuple[Declared, ...]:
    """The settings of configuration class ``cls``, in field order, nested ones with theirs.

    Raises ``TypeError`` naming a field made without :func:`setting`.
    """
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if _HELP not in f.metadata:
            raise TypeError(
                f"{cls.__name__}.{f.name} is not declared (make it with "
                "lidframe.settings.setting(identity=..., help=...))"
            )
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        nested = dataclasses.is_dataclass(default) and not isinstance(default, type)
        cli = f.metadata[_CLI]
        flag, metavar, choices = cli if cli is not None else (None, None, None)
        if cli is not None and flag is None:
            words = f.name.replace("_", "-")
            flag = f"--no-{words}" if default is True else f"--{words}"
        out.append(
            Declared(
                name=f.name,
                path=(*path, f.name),
                annotation=str(f.type),
                type=hints[f.name],
                default=default,
                help=f.metadata[_HELP],
                identifying=f.metadata[_KEY] is not False,
                flag=None if nested else flag,
                metavar=metavar,
                choices=choices,
                config=type(default) if nested else None,
                fields=declared(type(default), (*path, f.name)) if nested else (),
            )
        )
    return tuple(out)


def walk(settings: tuple[Declared, ...]) -> Iterator[Declared]:
    """Every setting, nested ones after the configuration that holds them."""
    for s in settings:
        yield s
        yield from walk(s.fields)


def render_help(text: str, spell: Callable[[str], str]) -> str:
    """``text`` with each ``{name}`` replaced by ``spell(name)`` (a ``KeyError`` names a setting
    that does not exist)."""
    return re.sub(r"\{(\w+)\}", lambda m: spell(m.group(1)), text)


def settings_doc(cls: type, indent: str = "    ") -> str:
    """One line per setting of ``cls`` (``* ``name: type = default``: help``), nested
    configurations' settings indented under them."""
    known = {s.name for s in walk(declared(cls))}

    def spell(name: str) -> str:
        if name not in known:
            raise KeyError(f"{cls.__name__}: help names an unknown setting {{{name}}}")
        return f"``{name}``"

    def lines(settings: tuple[Declared, ...], depth: int) -> Iterator[str]:
        for s in settings:
            default = f"{type(s.default).__name__}()" if s.config else repr(s.default)
            text = render_help(s.help, spell)
            yield f"{indent}{'  ' * depth}* ``{s.name}: {s.annotation} = {default}``: {text}"
            yield from lines(s.fields, depth + 1)

    return "\n".join(lines(declared(cls), 0))


class _Shown:
    """A default as ``help()`` should show it (``SpeechConfig()``, not its every field)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def keyword_parameters(cls: type, skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """The settings of ``cls`` as keyword-only parameters (name, annotation, default), for a
    function that takes them as ``**settings`` to show them in its signature."""
    return [
        inspect.Parameter(
            s.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=_Shown(f"{type(s.default).__name__}()") if s.config else s.default,
            annotation=s.annotation,
        )
        for s in declared(cls)
        if s.name not in skip
    ]


def identity(config: Any) -> dict[str, Any]:
    """The identifying settings of a dataclass instance, nested dataclasses included.

    Raises ``TypeError`` naming a field that does not declare whether it is identifying.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if _KEY not in f.metadata:
            raise TypeError(
                f"{type(config).__name__}.{f.name} does not declare whether it changes results "
                "(make it with lidframe.settings.setting(identity=...))"
            )
        rule = f.metadata[_KEY]
        if rule is False:
            continue
        value = getattr(config, f.name)
        if f.metadata.get(_OMIT) and value == f.default:
            continue
        if callable(rule):
            value = rule(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = identity(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
