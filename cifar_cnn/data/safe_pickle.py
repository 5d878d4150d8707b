"""An unpickler for the official CIFAR-10 python batches that cannot run arbitrary code.

``pickle.load`` on an untrusted file can call any importable function. The official
batches only need NumPy's array reconstruction, so every other global is refused and the
file is reported instead of executed (the approach the Python docs recommend under
"Restricting Globals").
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from cifar_cnn.data.errors import DataSourceError

# NumPy 1.x has only ``numpy.core``; NumPy 2 renamed it ``numpy._core``.
_numpy_core = np._core if hasattr(np, "_core") else np.core

# (module, name) pairs a CIFAR-10 batch may reference. NumPy 2 moved ``numpy.core`` to
# ``numpy._core``; both spellings occur in real files, and both resolve to the same function.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_core.multiarray._reconstruct,
    # Pickle protocol 5 (pickle.HIGHEST_PROTOCOL) rebuilds arrays from a buffer instead.
    ("numpy.core.numeric", "_frombuffer"): _numpy_core.numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_core.numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes in protocol-2 pickles through codecs.encode.
    ("_codecs", "encode"): __import__("codecs").encode,
}


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file, description: str):
        super().__init__(file, encoding="bytes")
        self._description = description

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataSourceError(
                f"{self._description}: the pickle asks for {module}.{name}, which a CIFAR-10 "
                "batch never needs; refusing to load it (it could run arbitrary code). "
                f"Allowed: {', '.join(f'{m}.{n}' for m, n in sorted(_ALLOWED_GLOBALS))}."
            ) from None


def load_batch_pickle(content: bytes, description: str) -> dict:
    """Unpickle one official CIFAR-10 python batch without running foreign code.

    Args:
        content: The batch file's bytes.
        description: Where the bytes came from, for error messages.

    Returns:
        The batch dictionary, keys as bytes (``b"data"``, ``b"labels"``, ...).
    """
    try:
        batch = _AllowListUnpickler(io.BytesIO(content), description).load()
    except DataSourceError:
        raise
    except Exception as error:  # Any parse failure of untrusted bytes is a data error.
        raise DataSourceError(f"{description} is not a valid CIFAR-10 batch: {error}") from error
    if not isinstance(batch, dict):
        raise DataSourceError(
            f"{description} holds a {type(batch).__name__}, not a CIFAR-10 batch dictionary."
        )
    return batch
