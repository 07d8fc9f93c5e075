"""Helpers shared by the tests (imported as a plain module: pytest puts tests/ on sys.path)."""
import numpy as np


def coco_rle(mask: np.ndarray) -> str:
    """A mask as the COCO RLE string `plateseg export --format csv` writes."""
    from pycocotools import mask as coco_mask
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
