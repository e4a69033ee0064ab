"""``edgeopt list``: registered passes and backends, and whether each is usable here."""

from __future__ import annotations

from edgeopt.cli._output import print_table
from edgeopt.errors import PluginError
from edgeopt.registry import backend_names, get_backend, pass_names

__all__ = ["list_plugins"]


def list_plugins() -> None:
    """List backends and passes, with the install hint for those not available."""
    rows = []
    for name in backend_names():
        try:
            backend = get_backend(name)
            ok, hint = backend.is_available(), backend.install_hint
        except PluginError as e:
            ok, hint = False, str(e)
        rows.append(("backend", name, "yes" if ok else "no", "" if ok else hint))
    rows.extend(("pass", name, "yes", "") for name in pass_names())
    print_table("edgeopt plugins", ("kind", "name", "available", "install hint"), rows)
