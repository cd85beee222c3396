"""Image collections: one lazy, random-access interface over every supported format."""

from .base import ImageCollection
from .registry import open_collection, reader_names

__all__ = ["ImageCollection", "open_collection", "reader_names"]
