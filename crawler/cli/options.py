"""What every ``crawl`` command shares: setting flags made from the `Settings` fields,
the options several commands take, and one way to run a command.

A command is a plain function whose parameters are its own options (typer reads
them). ``@setting_options(name, ...)`` adds one flag per named setting, built from
the setting's field: the flag (``per_host`` gives ``--per-host``), the value's type,
the help text and the default that help shows. So a setting is declared once, in
``crawler/_settings.py``, and every command that takes it spells and documents it
the same way. The command receives the flags given as ``settings``, a dict by
setting name; the others stay unset, so that a spider's own values still apply.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import Field
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args, get_origin

import typer

from .._errors import CrawlerError
from .._settings import SETTING_FIELDS, Settings, setting_info
from .logs import configure_logging, print_error, wants_json_logs

EXIT_INTERRUPTED = 130
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
Command = TypeVar("Command", bound=Callable[..., Any])

# Options that several commands take, declared here once.
SpiderFile = Annotated[Path, typer.Argument(metavar="SPIDER.py", help="Python file with a Spider subclass.")]
SpiderArgs = Annotated[
    list[str] | None, typer.Option("-a", metavar="NAME=VALUE", help="Set a spider attribute (repeat it).")
]
SpiderName = Annotated[
    str | None, typer.Option("--spider", metavar="NAME", help="Which spider, if the file has several.")
]
LogFormat = Annotated[str, typer.Option(metavar="text|json", help="json: one JSON object per line.")]
_METAVARS: dict[Any, str] = {int: "N", float: "NUMBER", str: "TEXT"}


def log_level_option(default: str) -> Any:
    """``--log-level``; unset, the command uses ``default``."""
    help_text = with_default("DEBUG, INFO, WARNING or ERROR.", default)
    return typer.Option(metavar="LEVEL", help=help_text, show_default=False)


def with_default(help_text: str, default: str | None) -> str:
    """Help text that ends with the default, where there is one to show. (Flags are
    unset by default, so that a spider's own values apply: click has none to show.)"""
    return f"{help_text}  [default: {default}]" if default else help_text


# crawl parse and crawl shell report a failed fetch as an error with its cause: no warnings first.
QuietLogLevel = Annotated[str, log_level_option("ERROR")]


def setting_options(*names: str) -> Callable[[Command], Command]:
    """Give ``command`` a flag for each named setting; it is called with
    ``settings=`` the ones given (lists as tuples), in place of those flags."""
    fields = [_field(name) for name in names]

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "settings"]

        @functools.wraps(command)
        def with_settings(**given: Any) -> Any:
            values = {spec.name: _setting_value(given.pop(spec.name)) for spec in fields}
            settings = {name: value for name, value in values.items() if value is not None}
            return command(**given, settings=settings)

        flags = [_flag_parameter(spec) for spec in fields]
        with_settings.__signature__ = signature.replace(parameters=[*own, *flags])  # type: ignore[attr-defined]
        return typing.cast(Command, with_settings)

    return decorate


def _field(name: str) -> Field[Any]:
    return next(spec for spec in SETTING_FIELDS if spec.name == name)


def _setting_value(value: Any) -> Any:
    """A repeated flag gives a list; settings hold tuples. Not given: None."""
    return tuple(value) if isinstance(value, list) else value


def _flag_parameter(spec: Field[Any]) -> inspect.Parameter:
    info = setting_info(spec)
    flag = "--" + spec.name.replace("_", "-")
    value_type = _value_type(_HINTS[spec.name])
    if value_type is bool:
        flag = f"{flag}/{info.off or '--no-' + flag[2:]}"
    metavar = info.metavar or _METAVARS.get(value_type)
    option = typer.Option(None, flag, help=with_default(info.help, shown_default(spec)), metavar=metavar)
    if get_origin(value_type) is tuple:  # repeat the flag for each value
        value_type = list[get_args(value_type)[0]]  # type: ignore[misc]
    return inspect.Parameter(
        spec.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=value_type | None
    )


def _value_type(hint: Any) -> Any:
    """The type a flag's value has: ``int | None`` gives int; a setting that takes
    seconds or a selector (``str | float``) takes the text."""
    members = get_args(hint) if get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    members = tuple(member for member in members if member is not type(None))
    return str if str in members else members[0]


def shown_default(spec: Field[Any]) -> str | None:
    """The default as help shows it: the setting's own wording, else its value
    (on/off for true/false); None when there is none to show."""
    info = setting_info(spec)
    if info.shown is not None:
        return info.shown or None
    default = spec.default_factory() if callable(spec.default_factory) else spec.default
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, tuple):
        return " ".join(map(str, default))
    if isinstance(default, float):
        return f"{default:g}"
    return None if default is None else str(default)


def run_command(
    command: Callable[..., Any], argv: Sequence[str], prog: str, *, epilog: str | None = None
) -> int:
    """Run ``command`` on ``argv``; its exit code. A usage error that typer finds
    (an unknown option, a value of the wrong type) is one line, ``PROG: error: ...``
    (a JSON object with ``--log-format json``) that points to ``--help``, and exit
    code 2; a `CrawlerError` the command raises is one line and its exit code; Ctrl-C
    is 130."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    app.command(context_settings=HELP_OPTIONS, epilog=epilog)(command)
    click_exception = _click_exceptions().ClickException
    try:
        code = app(list(argv), prog_name=prog, standalone_mode=False)
    except click_exception as exc:
        if wants_json_logs(list(argv)):
            configure_logging("INFO", "json")
        print_error(prog, f"{exc.format_message().rstrip('.')}; see '{prog} --help'")
        return int(exc.exit_code)
    except CrawlerError as exc:
        print_error(prog, str(exc))
        return exc.exit_code
    except typer.Abort:  # click's word for Ctrl-C
        return EXIT_INTERRUPTED
    return int(code or 0)


def _click_exceptions() -> Any:
    """click's exceptions: typer 0.2x carries its own copy of click, older ones use click."""
    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:
        return importlib.import_module("click.exceptions")


_HINTS = typing.get_type_hints(Settings)
