"""Core tests run without napari: nothing here may import it."""
