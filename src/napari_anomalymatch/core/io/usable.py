"""Whether read images carry data: the check every read of every reader passes through.

A plane (one channel of one image) is unusable when it has no finite pixel
(an all-NaN plane of a FITS cube, an HDU chosen by mistake) or when all its
finite pixels hold one value (a Zarr or HDF5 chunk that was never written
reads as the fill value; a cutout off the survey's footprint is all zeros).
One minimum and one maximum per plane find both; only planes holding NaN or
inf are looked at pixel by pixel.
"""

from __future__ import annotations

import numpy as np


def plane_faults(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which planes of ``(N, H, W, C)`` ``batch`` have no finite pixel, and which hold one value.

    Returns
    -------
    empty, constant
        Boolean ``(N, C)`` arrays; a plane is never both.
    """
    n, channels = len(batch), batch.shape[-1]
    flat = batch.reshape(n, -1, channels)
    low, high = flat.min(axis=1), flat.max(axis=1)
    constant = low == high
    empty = np.zeros((n, channels), dtype=bool)
    if batch.dtype.kind != "f":
        return empty, constant
    for image, channel in zip(*np.nonzero(~(np.isfinite(low) & np.isfinite(high))), strict=True):
        plane = flat[image, :, channel]
        finite = plane[np.isfinite(plane)]
        empty[image, channel] = finite.size == 0
        constant[image, channel] = finite.size > 0 and finite.min() == finite.max()
    return empty, constant


def describe_fault(image: np.ndarray, empty: np.ndarray, constant: np.ndarray, channel_names: list[str],
                   cause: str = "") -> str:
    """What is wrong with ``image`` ``(H, W, C)`` whose planes ``empty``/``constant`` mark, and what was
    expected; ``cause``, when the reader knows it (a missing chunk), replaces the likely causes."""
    if empty.all():
        return "has no finite pixel (all NaN or inf); expected at least one finite value"
    values = [float(np.nanmax(image[..., c])) if constant[c] else None for c in range(len(constant))]
    if constant.all() and len(set(values)) == 1:
        cause = cause or ("as a chunk that was never written (read as the fill value) or a cutout off the "
                          "survey's footprint")
        return f"is blank: every pixel is {values[0]:g}, {cause}; expected an image whose pixels vary"
    faults = [f"{channel_names[c]} has no finite pixel" if empty[c] else
              f"{channel_names[c]} is blank (every pixel {values[c]:g})"
              for c in range(len(constant)) if empty[c] or constant[c]]
    return (f"{'; '.join(faults)} of its {len(constant)} channels{', ' + cause if cause else ''}; expected "
            "every channel to hold data (choose other HDUs, bands or planes)")
