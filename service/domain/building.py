"""Building the domain's frozen values where they are made for every event or dossier.

A frozen slots dataclass under `direct_init` (schemas/events.py) is built by a call to its
class: the instance is made, then `__init__` lends it to a plain subclass and takes it back
(two class assignments) so that its fields are stored one bytecode each. `builder` gives a
function with the same parameters that makes the instance as that plain subclass and
assigns the class once: the same class, the same fields, one class assignment fewer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def builder(cls: Callable[P, T]) -> Callable[P, T]:
    """A function building `cls` (a frozen slots dataclass whose fields all have plain
    defaults or none) from the same arguments as `cls(...)`, with the same result."""
    assert isinstance(cls, type)
    plain = type(
        f"_Building{cls.__name__}",
        (cls,),
        {
            "__slots__": (),
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            "__module__": cls.__module__,
        },
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_plain": plain, "_cls": cls}
    names, params = [], []
    for item in fields(cls):
        assert item.default_factory is MISSING, "builder takes plain defaults only"
        names.append(item.name)
        if item.default is MISSING:
            params.append(item.name)
        else:
            namespace[f"_default_{item.name}"] = item.default
            params.append(f"{item.name}=_default_{item.name}")
    stores = "".join(f"    self.{name} = {name}\n" for name in names)
    exec(
        f"def build_{cls.__name__}({', '.join(params)}):\n"
        "    self = _new(_plain)\n"
        f"{stores}"
        "    self.__class__ = _cls\n"
        "    return self\n",
        namespace,
    )
    build: Callable[P, T] = namespace[f"build_{cls.__name__}"]
    return build
