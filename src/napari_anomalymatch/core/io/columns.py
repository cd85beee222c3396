"""The names each kind of table column is known by (matched in any case), in one table.

Image catalogues (``catalogue``), label files (``labelfiles``) and catalogues of known objects
(``review.known``) look their columns up here, so a name one accepts the others accept too; the
first name is the one a message asks for.
"""

from __future__ import annotations

COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "path": ("path", "file", "filename", "filepath", "image"),
    "id": ("id", "image_id", "name"),
    "label": ("label", "labels", "class"),
    "ra": ("ra", "raj2000", "_raj2000", "ra_j2000", "ra_deg", "radeg", "ra_icrs", "ra2000", "alpha"),
    "dec": ("dec", "dej2000", "_dej2000", "decj2000", "dec_j2000", "dec_deg", "decdeg", "dedeg", "de_icrs",
            "dec_icrs", "dec2000", "delta"),
    # a mosaic source's size (io.mosaic), kept beside its cutout
    "size": ("size", "radius", "flux_radius", "r_eff", "a_image", "semi_major", "kron_radius"),
    # a known object's name (review.known)
    "object": ("name", "id", "main_id", "objid", "obj_id", "source_id", "designation", "object"),
}
