"""The ``lidframe`` command: flags -> library calls, and the command-line contract, nothing else.

Every failure is one line ``lidframe: error: ...`` (a traceback only with ``--debug``), and the exit
status says what a pipeline can do about it (:data:`EXIT_STATUSES`). Modules, each importing only
those above it: ``_options`` (options and help texts several commands share), ``_settings`` (the
options of :func:`lidframe.run`'s settings, made from their one declaration in
:mod:`lidframe.settings`, and read back), ``_parser`` (every command's flags and help), ``_main``
(:func:`main`, one library call per command).
``python -m lidframe.cli`` is the same command.
"""

from lidframe.cli._main import main
from lidframe.cli._parser import EXIT_STATUSES, build_parser

__all__ = ["EXIT_STATUSES", "build_parser", "main"]
