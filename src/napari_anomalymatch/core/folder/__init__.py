"""A session folder on disk: its files and the checks before it opens (``opening``), its write
lock (``lock``), pointing it at data that moved (``relocation``) and what it holds (``saved``).

::

    session.toml              the settings (SessionConfig)
    labels.sqlite             every label given, with its history (LabelStore)
    shard-sizes.json          for a sharded source: each shard's size, so it reopens at once
    cutouts/                  for a mosaic source: the cutouts cut so far, in chunks
    checkpoints/cycle-NNNN.safetensors   the model after each training cycle
    scores/cycle-NNNN/        the scores of the whole collection after that cycle
    history/, review.json     loss curves (``learning.history``) and the review's display (``review.state``)
    crossmatch.npz            each image's nearest known object (``review.crossmatch``)

Every write is atomic or transactional, so a session killed at any moment
re-opens with every label already given and continues where it stopped.
"""
