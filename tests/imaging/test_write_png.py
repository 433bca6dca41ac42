"""write_image's PNG options: lossless whatever the zlib strategy, read back with Pillow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from defectlab.imaging.io import write_image


@pytest.mark.parametrize("dtype,shape", [(np.uint8, (64, 80)), (np.uint16, (33, 47)), (np.uint8, (20, 30, 3))])
def test_run_length_pngs_hold_the_same_pixels(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(0, 3, shape), axis=1)  # runs and slow ramps, as micrographs filter to
    image = (smooth % (np.iinfo(dtype).max + 1)).astype(dtype)
    write_image(tmp_path / "rle.png", image, png_rle=True)
    write_image(tmp_path / "plain.png", image)
    with Image.open(tmp_path / "rle.png") as im:
        assert np.array_equal(np.asarray(im), image)
    # the strategy reached zlib: another deflate stream of the same pixels
    assert (tmp_path / "rle.png").read_bytes() != (tmp_path / "plain.png").read_bytes()
