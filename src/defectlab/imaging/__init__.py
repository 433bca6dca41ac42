"""Reading micrographs and image files."""

from .io import image_size_hw, normalize_minmax, read_image, to_gray, write_image

__all__ = ["image_size_hw", "normalize_minmax", "read_image", "to_gray", "write_image"]
