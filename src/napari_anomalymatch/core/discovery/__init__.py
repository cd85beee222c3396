"""Discovery beyond the ranking: images like a chosen one (``similarity``, ``index``)."""
