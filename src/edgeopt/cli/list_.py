"""``edgeopt list``: registered passes and backends, whether each is usable here, and options."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edgeopt.cli._output import JSON, emit_json, human, print_table
from edgeopt.errors import ConfigError, PluginError
from edgeopt.registry import backend_names, get_backend, get_pass, pass_names

__all__ = ["list_plugins", "type_text"]


def type_text(field: FieldInfo) -> str:
    """A field's type as a user writes it: ``'static' | 'dynamic'``, ``int (>= 1, <= 256)``."""
    text = _annotation(field.annotation)
    bounds = []
    for m in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                bounds.append(f"{sign} {getattr(m, attr)}")
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _annotation(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_annotation(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_annotation(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _options_of(name: str) -> tuple[str, type[BaseModel]]:
    """(what it is, its options model) for a backend or pass name."""
    if name in pass_names():
        return f"pass {name} (recipe options; -O {name}.key=value in auto)", get_pass(
            name
        ).options_type
    if name in backend_names() or name == "ort":
        backend = get_backend(name)
        return f"backend {backend.name} (-O key=value)", backend.options_type
    raise ConfigError(
        f"no backend or pass called {name!r}: one of {', '.join(backend_names() + pass_names())}"
    )


def list_plugins(
    options: str | None = typer.Option(
        None,
        "--options",
        metavar="NAME",
        help="Print the options of this backend or pass: name, type and range, default.",
    ),
    json_out: str | None = JSON,
) -> None:
    """List backends and passes, with the install hint for those not available."""
    out = human(json_out)
    if options is not None:
        title, model = _options_of(options)
        emit_json(json_out, json.dumps(model.model_json_schema()["properties"], indent=2))
        if json_out != "-":
            print_table(
                f"options of {title}",
                ("option", "type", "default", "description"),
                [
                    (
                        name,
                        type_text(f),
                        repr(f.get_default(call_default_factory=True)),
                        f.description or "",
                    )
                    for name, f in model.model_fields.items()
                ],
                out,
            )
        return
    rows = []
    for name in backend_names():
        try:
            backend = get_backend(name)
            ok, hint = backend.is_available(), backend.install_hint
        except PluginError as e:
            ok, hint = False, str(e)
        rows.append(("backend", name, "yes" if ok else "no", "" if ok else hint))
    for name in pass_names():  # a pass that needs a library says so like a backend
        step = get_pass(name)
        ok = bool(getattr(step, "is_available", lambda: True)())
        rows.append(
            (
                "pass",
                name,
                "yes" if ok else "no",
                "" if ok else str(getattr(step, "install_hint", "")),
            )
        )
    keys = ("kind", "name", "available", "install_hint")
    items: list[dict[str, str | bool]] = [dict(zip(keys, r, strict=True)) for r in rows]
    for item in items:
        item["available"] = item["available"] == "yes"
    emit_json(json_out, json.dumps(items, indent=2))
    if json_out != "-":
        print_table("edgeopt plugins", ("kind", "name", "available", "install hint"), rows, out)
