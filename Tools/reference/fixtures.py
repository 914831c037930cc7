"""Writes golden fixtures as safetensors files (F32 only) without needing the safetensors package.

Activations are stored NHWC (the engine's layout), weights in PyTorch's own layout. Parameters go into the
`__metadata__` map as strings. Used by the make_*_fixtures.py scripts in this folder; not run by CI.
"""
import json
import struct

import numpy as np


def save(path, tensors, metadata=None):
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(np.asarray(tensors[name], dtype=np.float32))
        raw = array.tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def nhwc(t):
    """A torch NCHW tensor as a numpy NHWC array."""
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy()
