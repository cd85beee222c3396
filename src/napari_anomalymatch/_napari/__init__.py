"""The napari plugin: the only part of the package that imports napari, Qt or magicgui.

Modules named in ``napari.yaml``: ``reader`` (FITS/HDF5/Zarr stacks as lazy
layers), ``writer`` (labels and scores of a session), ``sample_data`` (FIRST
radio galaxies) and ``main_widget`` (the AnomalyMatch dock).  ``controller``
owns one viewer's session and workers; ``api`` drives it from scripts.
"""
