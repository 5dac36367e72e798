"""One module per `pocketbert` subcommand (see pocketbert/cli.py for the contract)."""

from __future__ import annotations

import dataclasses


def default(config: type, name: str):
    """The default of field `name` of the dataclass `config` (a default factory is called).

    A command's option defaults are read from the typed config the option fills, so that each default is
    written once, on the field (the build's recipe sections read them from there too).
    """
    f = next((f for f in dataclasses.fields(config) if f.name == name), None)
    if f is None:
        raise KeyError(f"{config.__name__} has no field {name!r}")
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    if f.default is dataclasses.MISSING:
        raise KeyError(f"{config.__name__}.{name} has no default")
    return f.default
