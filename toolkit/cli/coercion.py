"""Coerce the plain option types (str, an Enum's choices) without typer's pydantic path.

Why: typer (from 0.2x) coerces every non-flag option through a pydantic ``TypeAdapter``, built on first
use, so any command with a string option imports pydantic (about 150 ms here, the largest part of
``toolkit plan``'s own cost against the ``ansible-inventory`` it must run; bench/plan_speed.py). For a
``str``, a flag's ``bool`` or an Enum without a custom parser the adapter does no more than pass the
value on or call typer's own choice match, so :func:`install` gives those parameters a coercion that
does that directly (a value of another shape, such as bytes, still goes to typer's adapter); every
other type (numbers, paths, ``parser=``) goes through typer's own as before.

The hook is typer's ``build_runtime_param`` (private): when a typer release lacks any of the names used
here, :func:`install` changes nothing and typer coerces as before, only slower
(tests/cli/test_plan_speed_cli.py notices it). Results and error messages are typer's: the same helpers,
and the same "Value error, ..." wording pydantic gives a bad choice.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_INSTALLED: list[bool] = []


def install() -> bool:
    """Route str, bool and Enum options past pydantic; True when typer has the hook (idempotent)."""
    if _INSTALLED:
        return True
    try:
        from typer import core  # noqa: PLC0415
        from typer._click.exceptions import BadParameter  # noqa: PLC0415
        from typer._coercion import RuntimeParam  # noqa: PLC0415
        from typer._param_types import coerce_cli_choice  # noqa: PLC0415
    except ImportError:
        return False
    found = getattr(core, "build_runtime_param", None)
    if found is None:
        return False
    typer_build: Callable[[Any], Any] = found

    @dataclass(frozen=True)
    class _Plain(RuntimeParam):
        """A str, a flag's bool, or one of an Enum's members; anything else is typer's to coerce."""

        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            annotation = self.annotation
            if annotation is str and isinstance(value, str):
                return value
            if annotation is bool and isinstance(value, bool):
                return value
            if annotation is not bool and annotation is not str:
                choices = list(annotation)
                try:
                    return coerce_cli_choice(
                        value, choices=choices, case_sensitive=self.parameter_info.case_sensitive, ctx=ctx
                    )
                except ValueError as exc:
                    raise BadParameter(f"Value error, {exc}", ctx=ctx, param=param) from None
            return typer_build(self.descriptor)._coerce_value(value, param, ctx)

    def build(descriptor: Any) -> Any:
        annotation = descriptor.annotation
        info = descriptor.parameter_info
        is_enum = isinstance(annotation, type) and issubclass(annotation, enum.Enum)
        plain = annotation in (str, bool) or is_enum
        if plain and info.parser is None and descriptor.file_annotation is None:
            return _Plain(parameter_info=info, annotation=annotation, descriptor=descriptor)
        return typer_build(descriptor)

    core.build_runtime_param = build  # type: ignore[attr-defined]
    _INSTALLED.append(True)
    return True
