"""The architectures a model can have: a name -> :class:`~defectlab.dl.archs.base.Architecture`.

Importing this package is cheap (no torch): the command line lists the names of the built-in
architectures from :data:`BUILTIN`, and :func:`get` imports an architecture's module only when
it is used. A module registers its architecture when imported::

    from defectlab.dl.archs import register
    from defectlab.dl.archs.base import SemanticArchitecture

    @register
    class Tiny(SemanticArchitecture):
        name = "tiny"
        ...

Adding an architecture to defectlab is one module here, ``dl/archs/<name>.py``, its name in
:data:`BUILTIN`, and its tests; a module outside defectlab (a plug-in, a notebook, a test)
registers its own with :func:`register` and is then trained, saved, loaded and predicted like
the built-in ones (``defectlab train <name>`` included, in that process).

Examples
--------
>>> names()[:2]
('unet', 'maskrcnn')
>>> get("segformer")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
KeyError: "unknown architecture 'segformer'; known: unet, maskrcnn..."
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from .base import Architecture

__all__ = ["BUILTIN", "get", "names", "register"]

#: The built-in architectures: name -> the module that registers it (imported by :func:`get`).
BUILTIN: dict[str, str] = {
    "unet": "defectlab.dl.archs.unet",
    "maskrcnn": "defectlab.dl.archs.maskrcnn",
    "stardist": "defectlab.dl.archs.stardist",
}

_REGISTRY: dict[str, "Architecture"] = {}
T = TypeVar("T")


def register(arch: T) -> T:
    """Register an :class:`~defectlab.dl.archs.base.Architecture` (a subclass, or an instance),
    under its ``name``; usable as a class decorator. Returns what it was given.

    A second architecture under a taken name is an error (a built-in one cannot be replaced
    by accident); registering the same class again (a module reloaded) replaces it.
    """
    instance: Any = arch() if isinstance(arch, type) else arch
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not name or name != name.strip() or "/" in name:
        raise ValueError(f"expected an architecture with a name like 'unet', got {name!r}")
    old = _REGISTRY.get(name)
    if old is not None and type(old).__qualname__ != type(instance).__qualname__:
        raise ValueError(f"architecture {name!r} is already registered ({type(old).__qualname__})")
    _REGISTRY[name] = instance
    return arch


def get(name: str) -> "Architecture":
    """The architecture registered as ``name`` (a built-in one is imported on first use).

    Raises
    ------
    KeyError
        No architecture of that name; the message lists the known ones.
    ImportError
        A built-in architecture needs torch (or torchvision), which is not installed.
    """
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(names())}") from None


def names() -> tuple[str, ...]:
    """The names of the built-in architectures, then those registered since (no import)."""
    return (*BUILTIN, *(n for n in _REGISTRY if n not in BUILTIN))
