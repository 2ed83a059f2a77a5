"""Source registry: every module in this package that defines a collector registers its type.

Adding a source type means adding one module here that decorates its collector class with
``@register("type-name")``; the config then refers to it by ``type = "type-name"``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pydantic import ValidationError

from flows.sources.base import Batch, Collector, PostRecord, SkipRecord, SourceError, SourceOptions

_REGISTRY: dict[str, type] = {}
_LOADED = False


def register(type_name: str):
    """Class decorator that makes a collector available as ``type = type_name``."""

    def decorate(cls: type) -> type:
        cls.type_name = type_name
        _REGISTRY[type_name] = cls
        return cls

    return decorate


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_") and module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    _LOADED = True


def source_types() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def build_collector(name: str, type_name: str, options: dict[str, Any], context: Any) -> Collector:
    """Validate a source's options and build its collector; SourceError(fatal_config) if wrong."""
    _load_all()
    cls = _REGISTRY.get(type_name)
    if cls is None:
        raise SourceError(
            name, f"unknown source type {type_name!r} (known: {', '.join(source_types())})", fatal_config=True
        )
    try:
        parsed = cls.Options.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()
        )
        raise SourceError(name, f"invalid options: {problems}", fatal_config=True) from exc
    return cls(name, parsed, context)


__all__ = [
    "Batch",
    "Collector",
    "PostRecord",
    "SkipRecord",
    "SourceError",
    "SourceOptions",
    "build_collector",
    "register",
    "source_types",
]
