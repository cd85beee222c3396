"""napari sample data: real FIRST radio galaxies (from the ``firstgalaxydata`` package, offline)."""

from __future__ import annotations

import numpy as np

from ..core.evaluation.demo import read_first_sample

N_IMAGES = 300


def first_radio_galaxies() -> list[tuple]:
    """300 FIRST radio galaxies (300x300 px) as one image stack; 5 % are bent-tailed.

    The layer's metadata carries each image's file name (``ids``), class and
    whether it is bent-tailed (``is_anomaly``), so the stack can be made a
    session (Data panel: *Use the selected layer as source*) and the truth
    used as a test set.
    """
    images, records = read_first_sample(N_IMAGES)
    metadata = {
        "ids": [r.file_name for r in records],
        "galaxy_class": [r.galaxy_class for r in records],
        "is_anomaly": np.array([r.galaxy_class == "Bent" for r in records]),
        "ra": np.array([r.ra for r in records]),
        "dec": np.array([r.dec for r in records]),
    }
    return [(images, {"name": "FIRST radio galaxies", "metadata": metadata, "contrast_limits": (0, 255)},
             "image")]
