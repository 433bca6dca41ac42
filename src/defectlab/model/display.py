"""How objects are shown: the data model knows no display code; display code registers here.

``Dataset._repr_html_`` (Jupyter's table), ``Dataset.show`` (a matplotlib picture) and the
like ask :func:`renderer` for what was registered for their class; :mod:`defectlab.notebook`
registers its functions when it is imported (``import defectlab`` does). Classes are named by
their qualified name, so that display code can register for a class it does not import
(``"defectlab.qc.result.CheckResult"``).

Examples
--------
>>> class Thing:
...     pass
>>> register(f"{Thing.__module__}.{Thing.__qualname__}", html=lambda obj: "<b>a thing</b>")
>>> renderer(Thing(), "html")(Thing())
'<b>a thing</b>'
>>> renderer(Thing(), "show") is None
True
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["register", "renderer"]

#: Qualified class name -> what -> function (``"html"``: obj -> str; ``"show"``: obj, ... -> picture).
_RENDERERS: dict[str, dict[str, Callable[..., Any]]] = {}


def register(class_name: str, **renderers: Callable[..., Any]) -> None:
    """Register display functions (``html=``, ``show=``, …) for the class called ``class_name``
    (``"module.QualName"``) and its subclasses."""
    _RENDERERS.setdefault(class_name, {}).update(renderers)


def renderer(obj: Any, what: str) -> Callable[..., Any] | None:
    """The function registered to display ``obj`` as ``what`` (its class's, or a base's); None if none."""
    for cls in type(obj).__mro__:
        found = _RENDERERS.get(f"{cls.__module__}.{cls.__qualname__}", {}).get(what)
        if found is not None:
            return found
    return None
