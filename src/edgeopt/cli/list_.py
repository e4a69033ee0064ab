"""``edgeopt list``: registered passes and backends, and whether each is usable here."""

from __future__ import annotations

import json

import typer

from edgeopt.cli._output import print_table
from edgeopt.errors import PluginError
from edgeopt.registry import backend_names, get_backend, pass_names

__all__ = ["list_plugins"]


def list_plugins(
    options: str | None = typer.Option(
        None, "--options", help="Print the options of this backend (for -O key=value)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """List backends and passes, with the install hint for those not available."""
    if options is not None:
        backend = get_backend(options)
        fields = backend.options_type.model_fields
        if as_json:
            schema = backend.options_type.model_json_schema()
            typer.echo(json.dumps(schema["properties"], indent=2))
            return
        print_table(
            f"options of backend {backend.name} (-O key=value)",
            ("option", "type", "default", "description"),
            [
                (
                    name,
                    str(f.annotation).replace("typing.", ""),
                    repr(f.get_default(call_default_factory=True)),
                    f.description or "",
                )
                for name, f in fields.items()
            ],
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
    rows.extend(("pass", name, "yes", "") for name in pass_names())
    if as_json:
        keys = ("kind", "name", "available", "install_hint")
        items: list[dict[str, str | bool]] = [dict(zip(keys, r, strict=True)) for r in rows]
        for item in items:
            item["available"] = item["available"] == "yes"
        typer.echo(json.dumps(items, indent=2))
        return
    print_table("edgeopt plugins", ("kind", "name", "available", "install hint"), rows)
