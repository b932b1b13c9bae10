"""The documentation of config dataclasses, read from the docstrings under their fields.

>>> from lanic_hub.pipeline import PipelineConfig
>>> field_docs(PipelineConfig)["phantom_n"]                      # doctest: +SKIP
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
from typing import Any


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` for the string literal written under each field of ``cls`` (and of
    its dataclass bases); fields without one are absent."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (a frozen app): no docs
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                out[node.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    return out


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def describe(cls: type, indent: str = "  ", width: int = 100) -> str:
    """The fields of a (nested) config dataclass as YAML-like lines with their defaults and docs."""
    lines = []
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        d = default_of(f)
        if dataclasses.is_dataclass(d):
            lines.append(f"{indent}{f.name}:" + (f"  # {docs[f.name]}" if f.name in docs else ""))
            lines.append(describe(type(d), indent + "  ", width))
            continue
        shown = "(required)" if d is dataclasses.MISSING else _yaml(d)
        head = f"{indent}{f.name}: {shown}"
        doc = docs.get(f.name)
        if doc:
            wrapped = textwrap.wrap(doc, width - len(indent) - 4)
            head += f"\n{indent}    " + f"\n{indent}    ".join(wrapped)
        lines.append(head)
    return "\n".join(lines)


def _yaml(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "[" + ", ".join(_yaml(x) for x in v) + "]"
    return str(v)


# ----------------------------------------------------------------------------- command-line flags


def _flag_type(tp: Any) -> tuple[type | None, bool]:
    """(argparse type, is_bool) of a field annotation: ``int``, ``float | None``, ``bool`` ..."""
    import types
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        tp = args[0]
    if tp is bool:
        return None, True
    if tp in (int, float, str):
        return tp, False
    return str, False


def add_dataclass_args(
    p,
    cls: type,
    *,
    skip: tuple[str, ...] = (),
    choices: dict[str, list[str]] | None = None,
    defaults: dict[str, Any] | None = None,
    dest_prefix: str = "",
) -> None:
    """One ``--flag`` per field of a config dataclass, generated from it: the type from the
    annotation, the help from the field's docstring, the default shown from the dataclass (and
    kept there: an unset flag leaves the field to its default). A bool field is
    ``--flag / --no-flag``. ``choices`` restricts a field's values; ``skip`` leaves fields out;
    ``defaults`` gives this command its own default for a field (shown in the help)."""
    import argparse
    import typing

    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp, is_bool = _flag_type(hints[f.name])
        own = defaults is not None and f.name in defaults
        d = defaults[f.name] if own else default_of(f)
        shown = _yaml(d) if d is not dataclasses.MISSING else "required"
        kw: dict[str, Any] = dict(
            dest=dest_prefix + f.name,
            default=d if own else argparse.SUPPRESS,
            help=f"{docs.get(f.name, '')} (default {shown})".strip().replace("%", "%%"),
        )
        if is_bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = tp
            if choices and f.name in choices:
                kw["choices"] = choices[f.name]
        p.add_argument("--" + f.name.replace("_", "-"), **kw)


def dataclass_from_args(cls: type, args: Any, dest_prefix: str = "", **overrides: Any):
    """``cls`` with the fields given on the command line (by :func:`add_dataclass_args`); the
    dataclass's defaults for the rest."""
    given = {
        f.name: getattr(args, dest_prefix + f.name)
        for f in dataclasses.fields(cls)
        if hasattr(args, dest_prefix + f.name)
    }
    return cls(**{**given, **overrides})
