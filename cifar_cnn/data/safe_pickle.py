"""An unpickler for the official CIFAR-10 python batches that cannot run arbitrary code.

``pickle.load`` on an untrusted file can call any importable function. The official
batches only need NumPy's array reconstruction, so every other global is refused and the
file is reported instead of executed (the approach the Python docs recommend under
"Restricting Globals").

Refusing globals is not enough on its own: a pickle of a few bytes can ask for gigabytes
(a memo index of 2**27 makes the unpickler allocate a 2 GB memo table), and a BUILD
opcode applied to an allowed function rewrites its attributes for the whole process.
So before anything is unpickled, the opcode stream is scanned (``pickletools.genops``)
against a model of the unpickler's stack and memo, and refused unless it only does what
a CIFAR-10 batch does: build a dict of strings, lists of ints and bytes, and NumPy arrays.
The few functions a batch calls are wrapped so they cannot allocate more than the file
holds, nor create the object dtypes that let array bytes be read as pointers.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from dataclasses import dataclass
from typing import Any

import numpy as np

from cifar_cnn.data.errors import DataSourceError

# NumPy 1.x has only ``numpy.core``; NumPy 2 renamed it ``numpy._core``.
_numpy_core = np._core if hasattr(np, "_core") else np.core

# A batch of 10,000 images takes about 30,000 opcodes, or about 90,000 when Python 3
# writes bytes at protocol 2 (three calls per file name). Each opcode creates at most one
# small object, so this bounds the memory a pickle can claim without carrying the data.
MAX_PICKLE_OPCODES = 250_000
# The unpickler sizes its memo table by the largest index it sees. The official batches
# memoize every file name (about 10,000 entries), Python 3 at protocol 2 about 30,000.
MAX_MEMO_ENTRIES = 100_000
# A batch stores each large object (its pixels) once. Fetching one again from the memo
# is how a small pickle multiplies memory (one copy per call), so only objects built
# from at most this many bytes of the file may be fetched again.
MAX_REUSED_OBJECT_BYTES = 1024
# Strings up to this length are remembered by the scan: global names and dtype codes.
_MAX_REMEMBERED_CHARS = 64

# Opcodes that push one constant, or one number, string or bytes read from the file.
_CONSTANT_OPCODES = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": ()}
_DATA_OPCODES = frozenset({
    "BININT", "BININT1", "BININT2", "SHORT_BINSTRING", "BINSTRING", "SHORT_BINUNICODE",
    "BINUNICODE", "SHORT_BINBYTES", "BINBYTES", "BYTEARRAY8",
})
# Every opcode that pickle protocols 2 to 5 (and Python 2's cPickle, which wrote the
# official files) use for a dict of str or bytes keys, lists of ints and bytes, and NumPy
# arrays. Object construction other than REDUCE (INST, OBJ, NEWOBJ), extension registries,
# persistent ids and out-of-band buffers never occur in a batch.
_ALLOWED_OPCODES = _DATA_OPCODES | set(_CONSTANT_OPCODES) | {
    "PROTO", "FRAME", "STOP", "MARK",
    "EMPTY_DICT", "EMPTY_LIST", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
    "APPEND", "APPENDS", "SETITEM", "SETITEMS",
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD",
    "BINPUT", "LONG_BINPUT", "MEMOIZE", "BINGET", "LONG_BINGET",
}
_TUPLE_LENGTHS = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_ADD_OPCODE_ITEMS = {"APPEND": 1, "SETITEM": 2}
# Dtype kinds a batch holds: bool, signed and unsigned integers, floats.
_NUMERIC_KINDS = "biuf"
# The state NumPy pickles for a plain numeric dtype is (3, byte order, None, None, None,
# -1, -1, 0). Fields or flags there would give a fresh dtype object semantics, letting
# array bytes be read as pointers: refused.
_DTYPE_STATE_LENGTH = 8
_DTYPE_STATE_VERSION = 3


class UnsafePickle(Exception):
    """A pickle does something a CIFAR-10 batch never does; ``str()`` says what."""


# --- The functions a batch may call, each refusing what a batch never asks for ---------


def _numeric_dtype(code, align=False, copy=True) -> np.dtype:
    """``numpy.dtype`` for the numeric dtypes a batch holds, always as a private copy.

    A private copy, because the pickle then BUILDs (sets the state of) the dtype it gets.

    Args:
        code: A type code such as ``'u1'`` or ``'<i8'`` (bytes in Python 2 pickles).
        align: As NumPy pickles it.
        copy: Ignored: a copy is always made.

    Returns:
        The dtype.
    """
    if not isinstance(code, (str, bytes)) or len(code) > _MAX_REMEMBERED_CHARS:
        raise UnsafePickle(f"the pickle asks for a dtype from {code!r:.80}; a CIFAR-10 batch "
                           "only uses type codes such as 'u1'.")
    dtype = np.dtype(code, bool(align), True)
    if dtype.kind not in _NUMERIC_KINDS:
        raise UnsafePickle(f"the pickle asks for dtype {dtype}; a CIFAR-10 batch only holds "
                           "numeric arrays (bool, integer, float).")
    return dtype


def _empty_array(subtype, shape, code) -> np.ndarray:
    """NumPy's ``_reconstruct``, limited to the empty array NumPy's own pickles start from.

    The array's real shape and bytes come afterwards from its BUILD state, which NumPy
    checks against each other; a non-empty shape here would allocate memory the file
    never held.

    Args:
        subtype: ``numpy.ndarray``.
        shape: ``(0,)``.
        code: The placeholder type code (``b'b'``).

    Returns:
        An empty array, waiting for its state.
    """
    if subtype is not np.ndarray or not isinstance(shape, tuple) or shape != (0,):
        raise UnsafePickle(f"the pickle asks NumPy for a {getattr(subtype, '__name__', subtype)}"
                           f" of shape {shape!r:.80}; NumPy pickles start from an empty ndarray.")
    return _numpy_core.multiarray._reconstruct(np.ndarray, (0,), _numeric_dtype(code))


def _array_from_buffer(buffer, dtype, shape, order="C") -> np.ndarray:
    """NumPy's ``_frombuffer`` (pickle protocol 5), with the dtype made by ``_numeric_dtype``.

    Args:
        buffer: The array's bytes.
        dtype: A dtype object (a type string could describe millions of fields).
        shape: The array's shape; NumPy checks it against the buffer's size.
        order: ``'C'`` or ``'F'``.

    Returns:
        An array viewing ``buffer``.
    """
    if not isinstance(dtype, np.dtype):
        raise UnsafePickle(f"the pickle rebuilds an array with dtype {dtype!r:.80}; NumPy "
                           "pickles pass a dtype object.")
    return _numpy_core.numeric._frombuffer(buffer, dtype, shape, order)


def _latin1_encode(text, encoding) -> bytes:
    """``codecs.encode``, as Python 3 writes bytes at protocol 2: ``encode(text, 'latin1')``.

    Args:
        text: The bytes, as a str of code points 0..255.
        encoding: ``'latin1'``; other codecs could expand or transform the data.

    Returns:
        The bytes.
    """
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle(f"the pickle calls codecs.encode with {encoding!r:.40}; Python "
                           "writes bytes with encode(text, 'latin1') only.")
    return text.encode("latin-1")


def _bytes_constructor(*args) -> bytes:
    """``bytes``, as Python 3 writes ``b''`` at protocol 2: ``bytes()``.

    Args:
        args: Nothing, or one bytes object (returned as it is). ``bytes(n)`` would
            allocate n zero bytes, so it is refused.

    Returns:
        The bytes.
    """
    if not args:
        return b""
    if len(args) == 1 and type(args[0]) is bytes:
        return args[0]
    raise UnsafePickle(f"the pickle calls bytes{args!r:.80}; Python writes only bytes() "
                       "(for b'') that way.")


# Functions a batch calls with REDUCE, by every (module, name) that real files use: NumPy 2
# moved numpy.core to numpy._core, and Python 2 names the builtins module __builtin__.
_ALLOWED_FUNCTIONS = {
    ("numpy.core.multiarray", "_reconstruct"): _empty_array,
    ("numpy._core.multiarray", "_reconstruct"): _empty_array,
    # Pickle protocol 5 (pickle.HIGHEST_PROTOCOL) rebuilds arrays from a buffer instead.
    ("numpy.core.numeric", "_frombuffer"): _array_from_buffer,
    ("numpy._core.numeric", "_frombuffer"): _array_from_buffer,
    ("numpy", "dtype"): _numeric_dtype,
    # Python 3 writes bytes in protocol-2 pickles through codecs.encode, and b'' as bytes().
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _bytes_constructor,
    ("builtins", "bytes"): _bytes_constructor,
}
# Globals a batch only passes as an argument (to _reconstruct), never calls.
_ALLOWED_ARGUMENTS = {("numpy", "ndarray"): np.ndarray}
_ALLOWED_GLOBALS = {**_ALLOWED_FUNCTIONS, **_ALLOWED_ARGUMENTS}
# BUILD may only set the state of what these functions return: a dtype or an array.
_STATEFUL_RESULTS = {_numeric_dtype, _empty_array}


def _global_refusal(module: str, name: str) -> str:
    return (f"the pickle asks for {module}.{name}, which a CIFAR-10 batch never needs; "
            "refusing to load it (it could run arbitrary code). Allowed: "
            f"{', '.join(f'{m}.{n}' for m, n in sorted(_ALLOWED_GLOBALS))}.")


# --- The pre-scan ---------------------------------------------------------------------

_UNKNOWN = object()  # The value of an object the scan does not follow.


@dataclass(eq=False)
class _Item:
    """What the scan knows about one object on the unpickler's stack or in its memo.

    Attributes:
        global_name: ``(module, name)`` if the object is a global itself.
        made_by: The allowed function whose call (REDUCE) created it, if any.
        value: Its value for small constants and tuples of them, else ``_UNKNOWN``.
        size: Bytes of the file's strings it was built from (what reusing it costs).
    """

    global_name: tuple[str, str] | None = None
    made_by: Any = None
    value: Any = _UNKNOWN
    size: int = 0


def _data_item(arg) -> _Item:
    """The item an opcode that carries data (a number, string or bytes) pushes."""
    if isinstance(arg, int):
        return _Item(value=arg)
    value = arg if isinstance(arg, (str, bytes)) and len(arg) <= _MAX_REMEMBERED_CHARS \
        else _UNKNOWN
    return _Item(value=value, size=len(arg))


def _tuple_item(items: list[_Item]) -> _Item:
    values = tuple(item.value for item in items)
    return _Item(value=_UNKNOWN if _UNKNOWN in values else values,
                 size=sum(item.size for item in items))


def _describe(item: _Item) -> str:
    if item.global_name:
        return ".".join(item.global_name)
    return f"an object made by {item.made_by.__name__}" if item.made_by else "a plain object"


class _PickleScan:
    """Follows a pickle's stack and memo, opcode by opcode, without building any object."""

    def __init__(self, file_bytes: int):
        self._file_bytes = file_bytes
        self._stack: list[_Item] = []
        self._marks: list[int] = []  # Stack heights at each MARK, like the unpickler's.
        self._memo: dict[int, _Item] = {}

    def run(self, content: bytes) -> None:
        """Scan a whole pickle; raise :class:`UnsafePickle` at the first refused opcode."""
        for count, (opcode, arg, position) in enumerate(pickletools.genops(content), 1):
            if opcode.name not in _ALLOWED_OPCODES:
                raise UnsafePickle(
                    f"opcode {opcode.name} at byte {position} is not one a CIFAR-10 batch "
                    f"uses; refusing to load it. Allowed: {', '.join(sorted(_ALLOWED_OPCODES))}.")
            if count > MAX_PICKLE_OPCODES:
                raise UnsafePickle(f"the pickle has more than {MAX_PICKLE_OPCODES:,} opcodes; "
                                   "a CIFAR-10 batch has about 30,000 to 90,000.")
            try:
                self._step(opcode.name, arg)
            except UnsafePickle as error:
                raise UnsafePickle(f"{error} (opcode {opcode.name} at byte {position})") from None

    def _step(self, name: str, arg) -> None:
        """Apply one (allowed) opcode to the model of the stack and memo."""
        if name in _CONSTANT_OPCODES:
            self._stack.append(_Item(value=_CONSTANT_OPCODES[name]))
        elif name in _DATA_OPCODES:
            self._stack.append(_data_item(arg))
        elif name in ("EMPTY_DICT", "EMPTY_LIST"):
            self._stack.append(_Item())
        elif name == "MARK":
            self._marks.append(len(self._stack))
        elif name in ("TUPLE", *_TUPLE_LENGTHS):
            items = self._pop_to_mark() if name == "TUPLE" else self._pop(_TUPLE_LENGTHS[name])
            self._stack.append(_tuple_item(items))
        elif name in ("APPEND", "SETITEM", "APPENDS", "SETITEMS"):
            self._add_to_container(name)
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            self._push_global(name, arg)
        elif name == "REDUCE":
            self._reduce()
        elif name == "BUILD":
            self._build()
        elif name in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            self._memoize(len(self._memo) if name == "MEMOIZE" else arg)
        elif name in ("BINGET", "LONG_BINGET"):
            self._fetch(arg)
        elif name == "FRAME" and arg > self._file_bytes:
            # Frames only group opcodes; one larger than the file is a lie.
            raise UnsafePickle(f"a frame of {arg:,} bytes in a file of {self._file_bytes:,}")
        elif name == "STOP":
            self._pop(1)
        # PROTO and (honest) FRAME change nothing on the stack.

    def _pop(self, count: int) -> list[_Item]:
        floor = self._marks[-1] if self._marks else 0
        if len(self._stack) - count < floor:
            raise UnsafePickle("the pickle is malformed (it pops an empty stack)")
        items = self._stack[len(self._stack) - count:]
        del self._stack[len(self._stack) - count:]
        return items

    def _pop_to_mark(self) -> list[_Item]:
        if not self._marks:
            raise UnsafePickle("the pickle is malformed (no MARK to pop to)")
        start = self._marks.pop()
        items = self._stack[start:]
        del self._stack[start:]
        return items

    def _add_to_container(self, name: str) -> None:
        """APPEND(S) and SETITEM(S): add items to the list or dict below them."""
        if name in _ADD_OPCODE_ITEMS:
            items = self._pop(_ADD_OPCODE_ITEMS[name])
        else:
            items = self._pop_to_mark()
        (container,) = self._pop(1)
        if container.global_name:
            raise UnsafePickle(f"the pickle adds items to {_describe(container)} itself")
        container.value = _UNKNOWN
        container.size += sum(item.size for item in items)
        self._stack.append(container)

    def _push_global(self, name: str, arg) -> None:
        if name == "GLOBAL":
            module, _, attribute = arg.partition(" ")
        else:
            module_item, name_item = self._pop(2)
            module, attribute = module_item.value, name_item.value
            if not (isinstance(module, str) and isinstance(attribute, str)):
                raise UnsafePickle("the pickle names a global with something other than "
                                   "two short strings")
        if (module, attribute) not in _ALLOWED_GLOBALS:
            raise UnsafePickle(_global_refusal(module, attribute))
        self._stack.append(_Item(global_name=(module, attribute)))

    def _reduce(self) -> None:
        function, arguments = self._pop(2)
        if function.global_name not in _ALLOWED_FUNCTIONS:
            raise UnsafePickle(f"the pickle calls {_describe(function)}, which a CIFAR-10 "
                               "batch never calls")
        self._stack.append(_Item(made_by=_ALLOWED_FUNCTIONS[function.global_name],
                                 size=arguments.size))

    def _build(self) -> None:
        """BUILD sets an object's state; only arrays and dtypes the pickle made may get one."""
        target, state = self._pop(2)
        if target.global_name:
            # Setting a global's state would change it for the whole process.
            raise UnsafePickle(f"the pickle would rewrite the attributes of "
                               f"{_describe(target)} itself, for the rest of the process")
        if target.made_by not in _STATEFUL_RESULTS:
            raise UnsafePickle(f"the pickle sets the state of {_describe(target)}; a CIFAR-10 "
                               "batch only sets the state of NumPy arrays and dtypes")
        if target.made_by is _numeric_dtype:
            _check_dtype_state(state)
        target.size += state.size
        self._stack.append(target)

    def _memoize(self, index: int) -> None:
        if not 0 <= index < MAX_MEMO_ENTRIES:
            raise UnsafePickle(f"the pickle stores memo entry {index:,}; a CIFAR-10 batch "
                               f"uses fewer than {MAX_MEMO_ENTRIES:,} (the unpickler would "
                               "allocate a table that large)")
        if len(self._stack) <= (self._marks[-1] if self._marks else 0):
            raise UnsafePickle("the pickle is malformed (it memoizes an empty stack)")
        self._memo[index] = self._stack[-1]

    def _fetch(self, index: int) -> None:
        item = self._memo.get(index)
        if item is None:
            raise UnsafePickle(f"the pickle fetches memo entry {index}, which it never stored")
        if item.size > MAX_REUSED_OBJECT_BYTES:
            raise UnsafePickle(
                f"the pickle uses an object built from {item.size:,} bytes a second time; a "
                "CIFAR-10 batch stores each large object once (reusing one multiplies memory)")
        self._stack.append(item)


def _check_dtype_state(state: _Item) -> None:
    """Refuse a dtype state other than the one NumPy writes for a plain numeric dtype."""
    value = state.value
    plain = (isinstance(value, tuple) and len(value) == _DTYPE_STATE_LENGTH
             and value[0] == _DTYPE_STATE_VERSION and value[2:5] == (None, None, None)
             and value[7] == 0)
    if not plain:
        raise UnsafePickle(f"the pickle gives a dtype the state {value!r:.120}, not that of "
                           "a plain numeric dtype (no fields, no flags)")


def scan_pickle(content: bytes) -> None:
    """Check a pickle's opcode stream before it is unpickled.

    Args:
        content: The pickle's bytes.

    Raises:
        UnsafePickle: The pickle does something a CIFAR-10 batch never does (the message
            says what), or is malformed.
    """
    try:
        _PickleScan(len(content)).run(content)
    except ValueError as error:  # genops: truncated data or an unknown opcode.
        raise UnsafePickle(f"the pickle is malformed: {error}") from None


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file, encoding="bytes")

    def find_class(self, module: str, name: str):
        # The scan has refused other globals already; this holds even if it missed one.
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickle(_global_refusal(module, name)) from None


def load_batch_pickle(content: bytes, description: str) -> dict:
    """Unpickle one official CIFAR-10 python batch without running foreign code.

    Args:
        content: The batch file's bytes.
        description: Where the bytes came from, for error messages.

    Returns:
        The batch dictionary, keys as bytes (``b"data"``, ``b"labels"``, ...).
    """
    try:
        scan_pickle(content)
        batch = _AllowListUnpickler(io.BytesIO(content)).load()
    except UnsafePickle as error:
        raise DataSourceError(f"{description}: {error}") from None
    except MemoryError:
        raise DataSourceError(
            f"{description}: ran out of memory unpickling it; a CIFAR-10 batch is about 31 MB "
            "and decodes to about as much."
        ) from None
    except Exception as error:  # Any parse failure of untrusted bytes is a data error.
        raise DataSourceError(f"{description} is not a valid CIFAR-10 batch: {error}") from error
    if not isinstance(batch, dict):
        raise DataSourceError(
            f"{description} holds a {type(batch).__name__}, not a CIFAR-10 batch dictionary."
        )
    return batch
