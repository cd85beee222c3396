"""Decoding single image files and encoded image bytes into float32 HWC arrays.

8- and 16-bit images are scaled to [0, 1] by their bit depth, so a folder that
mixes both still shares one value range.  Palette images become RGB, RGBA
drops its alpha channel (it carries no sky signal) and grey-with-alpha
becomes grey.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import CorruptFileError

TIFF_SUFFIXES = (".tif", ".tiff")


def decode_image_file(path: Path) -> np.ndarray:
    """Read a PNG/JPEG/TIFF/BMP/GIF/WebP file as float32 ``(H, W, C)``.

    Raises
    ------
    CorruptFileError
        When the file cannot be decoded, naming the file.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return _to_float_hwc(_read_tiff(path), str(path))
        return _decode_with_pillow(path, str(path))
    except FileNotFoundError:
        raise
    except CorruptFileError:
        raise
    except Exception as err:
        raise CorruptFileError(
            f"{path}: cannot decode image ({type(err).__name__}: {err}); expected a readable "
            "PNG, JPEG or TIFF file"
        ) from err


def decode_image_bytes(data: bytes | np.ndarray, where: str) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, TIFF ...) as float32 ``(H, W, C)``."""
    return _to_float_hwc(decode_image_bytes_native(data, where), where)


def decode_image_bytes_native(data: bytes | np.ndarray, where: str) -> np.ndarray:
    """Decode encoded image bytes to their stored integer type, ``(H, W, C)``.

    ``decode_image_bytes`` is this array scaled by its bit depth, so 8-bit
    images can travel as ``uint8`` and be scaled later (on the GPU).
    """
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if not raw:
        raise CorruptFileError(f"{where}: empty image bytes; expected an encoded PNG/JPEG image")
    try:
        if raw[:4] in (b"II*\x00", b"MM\x00*"):
            import tifffile

            return _as_hwc(tifffile.imread(io.BytesIO(raw)), where)
        return _as_hwc(_pillow_array(io.BytesIO(raw)), where)
    except CorruptFileError:
        raise
    except Exception as err:
        raise CorruptFileError(
            f"{where}: cannot decode image bytes ({type(err).__name__}: {err}); expected an "
            "encoded PNG, JPEG or TIFF image"
        ) from err


def _decode_with_pillow(handle: Path | io.BytesIO, where: str) -> np.ndarray:
    return _to_float_hwc(_pillow_array(handle), where)


def _pillow_array(handle: Path | io.BytesIO) -> np.ndarray:
    from PIL import Image

    with Image.open(handle) as image:
        image.load()
        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode == "1":
            image = image.convert("L")
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            image = image.convert("RGB")
        array = np.asarray(image)
        mode = image.mode
    if mode in ("RGBA", "RGBa"):
        array = array[..., :3]
    elif mode in ("LA", "La"):
        array = array[..., :1]
    elif mode.startswith("I;16"):
        array = array.astype(np.uint16)
    return array


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    array = tifffile.imread(path)
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    return array


def _as_hwc(array: np.ndarray, where: str) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise CorruptFileError(
            f"{where}: image has shape {array.shape}; expected a 2-D grey or colour image"
        )
    return array


def _to_float_hwc(array: np.ndarray, where: str) -> np.ndarray:
    """Scale integer data by its bit depth and return float32 (H, W, C)."""
    array = _as_hwc(array, where)
    if array.dtype == np.uint8:
        return array.astype(np.float32) * np.float32(1 / 255)
    if array.dtype == np.uint16:
        return array.astype(np.float32) * np.float32(1 / 65535)
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        return ((array.astype(np.float64) - info.min) / (info.max - info.min)).astype(np.float32)
    return array.astype(np.float32)
