"""One registry of names, as timm registers models: backbones, heuristic policies, rewards, RL
algorithms and training stages are each a :class:`Registry`, so adding one is registering it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
F = TypeVar("F")

__all__ = ["Registry", "import_plugins"]


class Registry(Generic[T]):
    """Entries of one kind (``kind``, named in errors: ``"reward"``, ...) by name, in
    registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name`` and return it; ``ValueError`` if ``name`` is taken."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator form of :meth:`add` for an entry that is the decorated function or class."""

        def decorator(entry: F) -> F:
            self.add(name, entry)  # type: ignore[arg-type]
            return entry

        return decorator

    def get(self, name: str) -> T:
        """The entry registered as ``name``; ``ValueError`` listing the names if unknown."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {self.names()}")
        return self._entries[name]

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs, in registration order."""
        return iter(list(self._entries.items()))

    def copy(self) -> Registry[T]:
        """An independent registry with the same entries (tests register throwaway ones)."""
        other: Registry[T] = Registry(self.kind)
        other._entries = dict(self._entries)
        return other

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def import_plugins(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (found on its ``__path__``, ``path``) whose name does
    not start with ``_``, so that what they register exists once the package is imported."""
    for module in pkgutil.iter_modules(path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package}.{module.name}")
