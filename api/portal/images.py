"""Promo images: validated, resized to two widths as WebP, cached under a content hash.

Hash-named files never change, so they are served with a year-long immutable cache header:
a phone on a weak link downloads each picture once. Pillow's decompression-bomb guard and
an upload size limit keep a hostile upload from exhausting memory.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000
WIDTHS = (240, 480)
_NAME = re.compile(r"^([0-9a-f]{24})-(\d+)\.webp$")


class ImageRejected(ValueError):
    pass


def store_image(data: bytes, image_dir: Path) -> str:
    """Resize and write every width; return the content id used in URLs."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageRejected(f"image larger than {MAX_UPLOAD_BYTES} bytes")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageRejected(f"not a usable image: {type(exc).__name__}") from None
    image_id = hashlib.sha256(data).hexdigest()[:24]
    image_dir.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        path = image_dir / f"{image_id}-{width}.webp"
        if path.exists():
            continue
        copy = rgb.copy()
        copy.thumbnail((width, width * 4))
        tmp = path.with_suffix(".tmp")
        copy.save(tmp, "WEBP", quality=70, method=4)
        tmp.replace(path)
    return image_id


def image_path(name: str, image_dir: Path) -> Path | None:
    """The cached file for a URL name, or None (also for any name that is not ours)."""
    if not _NAME.match(name):
        return None
    path = image_dir / name
    return path if path.is_file() else None
