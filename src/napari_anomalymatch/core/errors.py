"""Errors raised by the engine.

Every error names the offending file, id or value, what was expected and,
where there is one, what to do about it.  Callers catch ``AnomalyMatchError``
to tell the user's mistakes apart from bugs.
"""

from __future__ import annotations


class AnomalyMatchError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(AnomalyMatchError, ValueError):
    """A setting is out of range or of the wrong kind."""


class SourceNotFoundError(AnomalyMatchError, FileNotFoundError):
    """A file, folder or dataset that was asked for does not exist."""


class UnsupportedSourceError(AnomalyMatchError, ValueError):
    """No reader knows how to open the given source."""


class CorruptFileError(AnomalyMatchError, OSError):
    """A file exists but cannot be decoded (truncated, corrupt, wrong format)."""


class ShapeMismatchError(AnomalyMatchError, ValueError):
    """An image's shape differs from the rest of its collection."""


class BadImageError(AnomalyMatchError, ValueError):
    """An image holds no usable pixels (all NaN or inf)."""


class EmptyCollectionError(AnomalyMatchError, ValueError):
    """A source holds no images."""


class UnknownIdError(AnomalyMatchError, KeyError):
    """An image id is not part of the collection."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DuplicateIdError(AnomalyMatchError, ValueError):
    """Two or more images of one source share an id (ids name images in labels, scores and exports)."""


class LabelError(AnomalyMatchError, ValueError):
    """A label value or a label file is not understood."""


class CheckpointError(AnomalyMatchError, OSError):
    """A checkpoint is missing, corrupt or was made for another model."""


class SessionError(AnomalyMatchError, OSError):
    """A session directory is missing, incomplete or in use incorrectly."""


class NotTrainedError(AnomalyMatchError, RuntimeError):
    """Scores or a model were asked for before any training cycle ran."""


class DiskFullError(SessionError):
    """A write failed because the disk (or the user's quota) is full."""


class ReadOnlyError(SessionError):
    """A write failed because the folder is read-only for this user."""


class IncompleteScoresError(SessionError):
    """Scores were asked for, but the newest scoring run stopped before its end."""


class NoEmbeddingsError(NotTrainedError):
    """A similarity search was asked for before a score run stored the collection's embeddings."""


class MissingDependencyError(AnomalyMatchError, ImportError):
    """An optional package that a feature needs is not installed."""


class SampError(AnomalyMatchError, ConnectionError):
    """No SAMP hub is running, it went away, or a message received over SAMP names no candidate."""


class SessionBusyError(SessionError):
    """Another process is changing the session (training, scoring, importing labels)."""
