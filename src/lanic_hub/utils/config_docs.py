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
