"""A registry of named choices (heads, review orders), as timm registers its models: each choice is
registered once, with everything that decides how it behaves, and every front end lists and
checks names through it."""

from __future__ import annotations

from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Choices by name, listed in the order they were registered.

    ``what`` names the choice in messages (``"train.head"``, ``"review order"``).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``; a name is registered once."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered already")
        self._entries[name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        """Every registered name, in the order they are offered."""
        return tuple(self._entries)

    def get(self, name: str) -> T:
        """The choice called ``name``.

        Raises
        ------
        ConfigError
            Naming the choice asked for and the known ones.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"{self.what} must be one of {list(self._entries)}; got {name!r}") from None
