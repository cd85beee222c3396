"""Synthetic survey cutouts for the scale benchmarks: galaxies on sky noise, stored as shards.

Each image is an elliptical Gaussian "galaxy" (random size, ellipticity,
angle, brightness and colour) on Gaussian sky noise, quantised to ``uint8``,
so file sizes and JPEG sizes behave like real cutouts rather than like white
noise.  Nothing here is imported by the package.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import h5py
import numpy as np

CHUNK_IMAGES = 256


def synthetic_images(n: int, size: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """``n`` uint8 cutouts ``(n, size, size, channels)``."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, channels), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) - (size - 1) / 2
    for start in range(0, n, 512):
        k = min(512, n - start)
        angle = rng.uniform(0, np.pi, (k, 1, 1))
        sigma = rng.uniform(size / 24, size / 8, (k, 1, 1))
        ratio = rng.uniform(0.3, 1.0, (k, 1, 1))
        dx, dy = rng.normal(0, size / 20, (2, k, 1, 1))
        u = (xx - dx) * np.cos(angle) + (yy - dy) * np.sin(angle)
        v = (yy - dy) * np.cos(angle) - (xx - dx) * np.sin(angle)
        profile = np.exp(-0.5 * ((u / sigma) ** 2 + (v / (sigma * ratio)) ** 2))
        colour = rng.uniform(0.6, 1.0, (k, 1, 1, channels))
        peak = rng.uniform(60, 230, (k, 1, 1, 1))
        sky = rng.normal(20, 6, (k, size, size, channels))
        out[start:start + k] = np.clip(sky + peak * colour * profile[..., None], 0, 255).astype(np.uint8)
    return out


def write_hdf5(path: Path, images: np.ndarray) -> Path:
    """Images as an uncompressed, chunked ``images`` dataset (how cutout files usually come)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(min(CHUNK_IMAGES, len(images)), *images.shape[1:]))
    return path


def write_zarr(path: Path, images: np.ndarray) -> Path:
    """Images as a Zarr array (default compressor) chunked by ``CHUNK_IMAGES`` images."""
    import zarr

    array = zarr.open_array(str(path), mode="w", shape=images.shape, dtype=images.dtype,
                            chunks=(min(CHUNK_IMAGES, len(images)), *images.shape[1:]))
    array[:] = images
    return path


def write_jpeg_hdf5(path: Path, images: np.ndarray, quality: int = 90) -> Path:
    """Images as a 1-D HDF5 dataset of JPEG bytes (one variable-length entry per image)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        dataset = f.create_dataset("jpeg", (len(images),), dtype=h5py.vlen_dtype(np.uint8))
        for i, image in enumerate(images):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
            dataset[i] = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    return path


def link_shards(pool: list[Path], n_shards: int, folder: Path, suffix: str) -> Path:
    """A folder of ``n_shards`` shard names, each a symbolic link to a file of ``pool`` in turn.

    Large collections reuse a pool of distinct shard files this way; every
    shard is still opened and read through its own name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_shards):
        link = folder / f"shard-{k:05d}{suffix}"
        if not link.is_symlink():
            os.symlink(pool[k % len(pool)].resolve(), link)
    return folder
