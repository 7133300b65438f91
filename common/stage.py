"""One stage contract: ``main(argv)`` parses flags into a frozen, validated config and calls ``run(config)``.

A stage's config is a frozen dataclass deriving from :class:`StageConfig`. It is built from an argparse
Namespace (what ``main`` does) or from a dict (tests, other stages); an unknown key, a missing required one
or a value of the wrong type is a :class:`~common.cli.UserError` naming it, never a silent default. Field
order is the flag order, so ``config.to_dict()`` is what ``vars(args)`` was and manifests keep their
``arguments`` unchanged. A runner that needs a changed copy uses ``config.replace(...)``.

A config whose fields are declared with :func:`flag` / :func:`shared_flag` is its own parser
(:func:`config_parser`, :func:`config_entry`): each flag is written once, as a field, so a stage script is its
docstring and one ``main = config_entry(__doc__, Config, run)`` line.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import types
import typing
from typing import Any, Callable, Mapping, Sequence

from common.cli import SHARED_FLAGS, UserError, run_reporting_user_errors, stage_parser

log = logging.getLogger(__name__)


def flag_name(field: str) -> str:
    """The flag a user types for a config field (``max_len`` -> ``--max-len``)."""
    return "--" + field.replace("_", "-")


def _option(f: dataclasses.Field) -> str:
    """The flag of a config field: its own spelling (``flag(option=...)``) or ``--field-name``."""
    return f.metadata.get("option") or flag_name(f.name)


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint`` (the plain types argparse produces, lists, unions)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple):
        item_hints = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(_matches(v, item_hints[0]) for v in value) \
            if item_hints else isinstance(value, (list, tuple))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # argparse gives floats, a dict may give a whole number
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is None and isinstance(hint, type):
        return f"a {hint.__name__}"
    return f"a {hint}".replace("typing.", "")


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Base of every stage's config. Subclasses declare fields and may override :meth:`check`."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise UserError(f"{cls.__name__} does not know {', '.join(unknown)}; the settings it takes are "
                            f"{', '.join(names)}.")
        missing = [_option(f) for f in dataclasses.fields(cls) if f.name not in values
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise UserError(f"{cls.__name__} needs {', '.join(missing)}; give a value.")
        return cls(**values)

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace):
        return cls.from_dict(vars(namespace))

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _matches(value, hints.get(f.name, Any)):
                raise UserError(f"{_option(f)} {value!r} is not {_describe(hints[f.name])}; fix the value.")
        self.check()

    def check(self) -> None:
        """Ranges and combinations; raise UserError naming the flag. Types are already checked."""

    def to_dict(self) -> dict[str, Any]:
        """The fields in flag order, values as given (lists stay lists, as in ``vars(args)``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def run_stage(argv: Sequence[str] | None, parser: argparse.ArgumentParser, config_cls: type[StageConfig],
              run: Callable[[Any], int | None]) -> int:
    """``main(argv)`` of a stage: flags -> ``config_cls`` -> ``run(config)``; a UserError is exit code 2."""

    def parse_and_run(args) -> int | None:
        config = config_cls.from_namespace(parser.parse_args(args))
        log.info("%s", config)  # the effective config first (house style)
        return run(config)

    return run_reporting_user_errors(parse_and_run, argv, run.__module__)


def stage_entry(build_parser: Callable[[], argparse.ArgumentParser], config_cls: type[StageConfig],
                run: Callable[[Any], int | None]) -> Callable[..., int]:
    """``main(argv=None)`` from a parser builder: what :func:`config_entry` returns (a stage script does not
    build its own parser: its config's fields declare its flags)."""

    def main(argv: Sequence[str] | None = None) -> int:
        return run_stage(argv, build_parser(), config_cls, run)

    main.__doc__ = f"Parse ``argv`` into {config_cls.__name__} and call {run.__module__}.{run.__name__}."
    main.build_parser = build_parser  # the entry point's flags, for --help tools and tests
    return main


@dataclasses.dataclass(frozen=True, eq=False)
class OneOf:
    """A group of mutually exclusive flags: each field declared ``flag(..., one_of=group)`` with the same
    object joins it (argparse's mutually exclusive group); ``required``: one of them must be given."""

    required: bool = False


def flag(default: Any = dataclasses.MISSING, *, help: str | None = None, aliases: Sequence[str] = (),
         option: str | None = None, one_of: OneOf | None = None, **argparse_options) -> Any:
    """A config field that is also its flag ``--field-name``: no default = a required flag; ``aliases`` are
    other spellings (the seed's ``--max_len``); ``option`` replaces ``--field-name`` as the first spelling
    (the seed's ``--model_path``, ``--lambda`` for ``xai_lambda``); ``one_of`` puts it in a group of mutually
    exclusive flags (:class:`OneOf`); ``argparse_options`` are passed on (``action="append"``, ``nargs``,
    ``metavar``, ``choices``). ``type`` comes from the annotation; a list default is copied per config."""
    kwargs: dict[str, Any] = {}
    if isinstance(default, list):
        kwargs["default_factory"] = lambda: list(default)
    elif default is not dataclasses.MISSING:
        kwargs["default"] = default
    # keyword-only: a required flag may follow one with a default, in the order the flags are listed
    return dataclasses.field(kw_only=True, metadata={"help": help, "aliases": tuple(aliases), "option": option,
                                                     "one_of": one_of, "argparse": argparse_options}, **kwargs)


def shared_flag(name: str, **overrides) -> Any:
    """The field of one of the flags many stages share (:data:`common.cli.SHARED_FLAGS`): its spellings,
    default and help, any of them overridden (``shared_flag("device", default="cpu")``)."""
    spellings, options = SHARED_FLAGS[name]
    options = {**options, **overrides}
    options.pop("type", None)  # the annotation says it
    return flag(options.pop("default", dataclasses.MISSING), help=options.pop("help", None),
                aliases=spellings[1:], **options)


def _scalar(hint: Any) -> Any:
    """The type argparse converts each value to: ``int`` for ``list[int] | None``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return _scalar(args[0])
    if typing.get_origin(hint) in (list, tuple):
        return _scalar(args[0]) if args else str
    return hint


def config_parser(config_cls: type[StageConfig], description: str | None) -> argparse.ArgumentParser:
    """The parser a config's fields declare, in field order (so ``vars(args)`` has the fields' order)."""
    parser = stage_parser(description)
    hints = typing.get_type_hints(config_cls)
    groups: dict[OneOf, Any] = {}
    for f in dataclasses.fields(config_cls):
        options = dict(f.metadata.get("argparse", {}))
        scalar = _scalar(hints[f.name])
        if scalar is bool:
            options.setdefault("action", argparse.BooleanOptionalAction)
        elif scalar in (int, float):
            options.setdefault("type", scalar)
        if f.default is not dataclasses.MISSING:
            options["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            options["default"] = f.default_factory()
        else:
            options["required"] = True
        one_of = f.metadata.get("one_of")
        if one_of is not None and one_of not in groups:
            groups[one_of] = parser.add_mutually_exclusive_group(required=one_of.required)
        (parser if one_of is None else groups[one_of]).add_argument(
            _option(f), *f.metadata.get("aliases", ()), dest=f.name, help=f.metadata.get("help"), **options)
    return parser


def config_class(name: str, fields: Sequence[tuple], base: type[StageConfig], module: str, doc: str) -> type:
    """A frozen config class ``name`` of ``base`` from ``(field, type, flag(...))`` triples in flag order, so a
    group of flags that several stages share (a function returning its triples) sits where each stage lists
    it; a base class's fields would come first. ``module`` (the caller's ``__name__``) is where pickling and
    reprs find it."""
    cls = dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True)
    cls.__module__, cls.__doc__ = module, doc
    return cls


def config_entry(description: str | None, config_cls: type[StageConfig],
                 run: Callable[[Any], int | None]) -> Callable[..., int]:
    """``main`` of a stage whose config declares its flags: ``main = config_entry(__doc__, Config, run)``."""
    return stage_entry(lambda: config_parser(config_cls, description), config_cls, run)
