"""Test fixtures for the Checkpoints module (PyTorch zip / legacy / Lightning checkpoints and safetensors).

Usage: /work/venv/bin/python Tools/reference/make_checkpoint_fixtures.py

Needs torch and the safetensors package. Deterministic: every fixture is seeded from its own name, the
zip files written by hand carry fixed timestamps, and torch.save's own output is byte-stable. Each run
deletes and recreates, under Tests/CheckpointsTests/Fixtures/:

  good/        real files (mostly written by torch.save) that the reader must load. Next to each one,
               `<file>.expected.safetensors` holds every tensor reachable from the root through
               dicts/lists/tuples, keyed by its dotted path ("state_dict.model.conv.weight",
               "optimizer_states.0.state.0.exp_avg"), converted to contiguous float32 (bool -> 0/1).
               Its `__metadata__` has "dtypes" and "shapes" (JSON: path -> original dtype name / shape
               list, so 0-d scalars are distinguishable), "source" and "format". Tensors inside arbitrary
               objects (e.g. a callback's attributes) are not listed.
  hostile/     files the reader must refuse without executing anything, and manifest.json:
               [{"file", "expect": "refused", "error_contains", "why", "format", "detail_hint"}].
               error_contains is a lowercase substring of the error's description (compare lowercased);
               detail_hint is the more specific wording the current Swift code uses (informative only).
               Payloads that try to run code do `touch /tmp/diffusionrestore-pwned-marker`.
  fuzz-seeds/  small (< 8 KB) inputs for fuzzers: pickle-*.bin (raw pickle streams: data.pkl of good zip
               files, hand-made hostile pickles) and safetensors-*.bin (whole small files).

Safety: this script only *writes* hostile pickles (by hand-assembled opcodes or pickle.dumps of objects
whose __reduce__ names a dangerous callable). It never unpickles a hostile file; the checks at the end use
pickletools.genops / pickletools.dis, which only decode opcodes. torch.load is used on good files only.
"""
import collections
import contextlib
import io
import json
import marshal
import os
import pickle
import pickletools
import shutil
import struct
import sys
import types
import zipfile
import zlib

import torch
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save_file as st_save_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                     "Tests", "CheckpointsTests", "Fixtures"))
GOOD = os.path.join(ROOT, "good")
HOSTILE = os.path.join(ROOT, "hostile")
SEEDS = os.path.join(ROOT, "fuzz-seeds")

MARKER = "/tmp/diffusionrestore-pwned-marker"
TOUCH = "touch " + MARKER


def seed(name):
    torch.manual_seed(zlib.crc32(name.encode()))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# MARK: - Pickle opcode assembly (hand-made streams)

def op_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_str(text):
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def op_short_str(text):
    raw = text.encode("utf-8")
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE (protocol 4)


def op_bytes(raw):
    return b"B" + struct.pack("<I", len(raw)) + raw  # BINBYTES (protocol 3)


def op_int(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if -2**31 <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes(8, "little", signed=True)
    return b"\x8a\x08" + raw  # LONG1


PROTO2, PROTO3, PROTO4 = b"\x80\x02", b"\x80\x03", b"\x80\x04"
MARK, TUPLE, REDUCE, STOP, EMPTY_DICT, SETITEM = b"(", b"t", b"R", b".", b"}", b"s"


def call(module, name, *args_ops, proto=PROTO2):
    """module.name(*args) via GLOBAL + MARK ... TUPLE + REDUCE."""
    return proto + op_global(module, name) + MARK + b"".join(args_ops) + TUPLE + REDUCE + STOP


def op_list(*items_ops):
    return MARK + b"".join(items_ops) + b"l"


# MARK: - Tensor records written with pickle (the way torch.save writes them), for crafted layouts

STORAGE_CLASS = {
    torch.float32: torch.FloatStorage, torch.float16: torch.HalfStorage, torch.bfloat16: torch.BFloat16Storage,
    torch.float64: torch.DoubleStorage, torch.int64: torch.LongStorage, torch.int32: torch.IntStorage,
    torch.uint8: torch.ByteStorage, torch.bool: torch.BoolStorage,
}


class StorageRef:
    """A storage as a persistent id: ('storage', torch.<T>Storage, key, 'cpu', numel[, view])."""

    def __init__(self, key, dtype, numel, storage_class=None, legacy=False):
        self.key, self.dtype, self.numel, self.legacy = key, dtype, numel, legacy
        self.storage_class = storage_class or STORAGE_CLASS[dtype]


class TensorRecord:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class RecordPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            pid = ("storage", obj.storage_class, obj.key, "cpu", obj.numel)
            return pid + (None,) if obj.legacy else pid
        return None


def record_pickle(obj, protocol=2):
    buffer = io.BytesIO()
    RecordPickler(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def raw_bytes(tensor, big_endian=False):
    """A tensor's contiguous element bytes (little-endian, or byte-swapped)."""
    t = tensor.contiguous()
    if t.dtype == torch.bfloat16:
        array = t.view(torch.int16).numpy()
    else:
        array = t.numpy()
    return (array.byteswap() if big_endian else array).tobytes()


# MARK: - Zip container written by hand (full control over every field)

def make_zip(entries, *, eocd_override=None, extra_central=()):
    """entries: [(name, data)] or [(name, data, method, uncompressed_size, crc)]; all fields little-endian.

    Timestamps are fixed (1980-01-01). eocd_override: dict with any of count, size, offset.
    extra_central: extra central directory records [(name, local_offset, data_len)] (for aliasing tricks).
    """
    out = bytearray()
    central = bytearray()
    count = 0
    for entry in entries:
        name, data = entry[0], entry[1]
        method = entry[2] if len(entry) > 2 else 0
        uncompressed = entry[3] if len(entry) > 3 else len(data)
        crc = entry[4] if len(entry) > 4 else zlib.crc32(data)
        raw_name = name.encode("utf-8")
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), uncompressed,
                           len(raw_name), 0)
        out += raw_name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data),
                               uncompressed, len(raw_name), 0, 0, 0, 0, 0, offset)
        central += raw_name
        count += 1
    for name, offset, length in extra_central:
        raw_name = name.encode("utf-8")
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, 0, length, length,
                               len(raw_name), 0, 0, 0, 0, 0, offset)
        central += raw_name
        count += 1
    directory_offset = len(out)
    out += central
    fields = {"count": count, "size": len(central), "offset": directory_offset}
    fields.update(eocd_override or {})
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, fields["count"], fields["count"], fields["size"],
                       fields["offset"], 0)
    return bytes(out)


def torch_zip(pickle_bytes, storages=None, prefix="archive", extra=(), byteorder=None):
    """A torch-style zip: <prefix>/data.pkl, [byteorder], data/<key>..., version; all STORED."""
    entries = [(prefix + "/data.pkl", pickle_bytes)]
    if byteorder is not None:
        entries.append((prefix + "/byteorder", byteorder.encode()))
    for key, data in (storages if storages is not None else {"0": bytes(16)}).items():
        entries.append((prefix + "/data/" + key, data))
    entries.append((prefix + "/version", b"3\n"))
    entries.extend(extra)
    return make_zip(entries)


# MARK: - Legacy (pre-1.6) container written by hand

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def legacy_file(main_pickle, keys=(), storages=b"", version=1001):
    """magic, protocol version, sys_info, main pickle, storage key list, then raw storages."""
    sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
    return (pickle.dumps(LEGACY_MAGIC, protocol=2) + pickle.dumps(version, protocol=2)
            + pickle.dumps(sys_info, protocol=2) + main_pickle + pickle.dumps(list(keys), protocol=2) + storages)


# MARK: - Expected-values files

def tensor_paths(obj, prefix="", out=None):
    """Every tensor reachable from obj through dicts, lists and tuples, by dotted path."""
    out = collections.OrderedDict() if out is None else out
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            tensor_paths(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        for index, value in enumerate(obj):
            tensor_paths(value, f"{prefix}.{index}" if prefix else str(index), out)
    return out


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def write_expected(path, obj, fmt):
    tensors = tensor_paths(obj)
    assert tensors, path
    values = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in tensors.items()}
    metadata = {
        "dtypes": json.dumps({k: dtype_name(v.dtype) for k, v in tensors.items()}, sort_keys=True),
        "shapes": json.dumps({k: list(v.shape) for k, v in tensors.items()}, sort_keys=True),
        "source": os.path.basename(path),
        "format": fmt,
    }
    st_save_file(values, path + ".expected.safetensors", metadata=metadata)
    canonical_safetensors(path + ".expected.safetensors")


def canonical_safetensors(path):
    """Rewrites the header of a file the safetensors package wrote with its __metadata__ keys sorted.

    The package emits metadata in hash-map order, which changes from run to run; the tensors, their
    order and offsets, and the data section are kept exactly as the package wrote them.
    """
    data = read(path)
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length], object_pairs_hook=collections.OrderedDict)
    ordered = collections.OrderedDict()
    if "__metadata__" in header:
        ordered["__metadata__"] = collections.OrderedDict(sorted(header.pop("__metadata__").items()))
    ordered.update(header)
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    write(path, struct.pack("<Q", len(text)) + text + data[8 + length:])


def canonical_legacy(data):
    """Makes a legacy file torch.save wrote reproducible: torch names storages by memory address and
    writes them in sorted-address order. Keys become fixed address-like numbers in order of first use,
    and the key list and storage blocks follow that order.

    Only BINUNICODE operands of the main pickle change (protocol 2 has no frames or offsets, so the
    stream stays valid); the key list is re-pickled as torch pickles it. Used on this script's own good
    files only (the storage types are read with a stub Unpickler that builds no tensors).
    """
    stream = io.BytesIO(data)
    spans = []
    for _ in range(5):  # magic, protocol version, sys_info, main pickle, storage key list
        start = stream.tell()
        ops = []
        for op, arg, pos in pickletools.genops(stream):
            ops.append((op.name, arg, pos))
            if op.name == "STOP":
                break
        spans.append((start, stream.tell(), ops))
    element_size = {}

    class StorageLister(pickle.Unpickler):
        def persistent_load(self, pid):
            element_size.setdefault(pid[2], LEGACY_ELEMENT_SIZE[pid[1].__name__])

        def find_class(self, module, name):
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return lambda *args: None
            assert (module, name) == ("collections", "OrderedDict") or name.endswith("Storage"), (module, name)
            return super().find_class(module, name)

    StorageLister(io.BytesIO(data[spans[3][0]:spans[3][1]])).load()
    old_keys = pickle.loads(data[spans[4][0]:spans[4][1]])
    mapping = {key: str(94_000_000_000_000 + 64 * i) for i, key in enumerate(element_size)}
    out = bytearray(data[:spans[3][0]])
    start, end, ops = spans[3]
    cursor = start
    for name, arg, pos in ops:
        if name == "BINUNICODE" and arg in mapping:
            out += data[cursor:pos] + op_str(mapping[arg])
            cursor = pos + 5 + len(arg.encode())
    out += data[cursor:end]
    blocks, cursor = {}, spans[4][1]
    for key in old_keys:
        (count,) = struct.unpack("<Q", data[cursor:cursor + 8])
        size = 8 + count * element_size[key]
        blocks[key] = data[cursor:cursor + size]
        cursor += size
    assert cursor == len(data)
    out += pickle.dumps([mapping[key] for key in element_size], protocol=2)
    for key in element_size:
        out += blocks[key]
    return bytes(out)


LEGACY_ELEMENT_SIZE = {"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "DoubleStorage": 8,
                       "LongStorage": 8, "IntStorage": 4, "ByteStorage": 1, "BoolStorage": 1}


# MARK: - Fake importable modules (so pickle can name classes that live in "other" packages)

@contextlib.contextmanager
def fake_modules(classes):
    """classes: {"pkg.mod": [cls, ...]}; registers pkg, pkg.mod in sys.modules for the duration."""
    added = []
    for qualified, members in classes.items():
        parts = qualified.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        for cls in members:
            cls.__module__ = qualified
            setattr(sys.modules[qualified], cls.__name__, cls)
    try:
        yield
    finally:
        for name in reversed(added):
            del sys.modules[name]


class TrainConfig:
    """Pickled as mylib.config.TrainConfig: an unknown but harmless class (GLOBAL + NEWOBJ + BUILD)."""

    def __init__(self, lr, channels, name):
        self.lr, self.channels, self.name = lr, channels, name


class AttributeDict(dict):
    """Stands in for Lightning's AttributeDict (pickled as lightning.fabric.utilities.data.AttributeDict)."""


class HarmlessCallbackState:
    """A callback's saved state: a plain object the reader keeps inert (it warns, never imports it)."""

    def __init__(self):
        self.patience = 3
        self.history = [0.5, 0.25, 0.125]
        self.last_value = torch.tensor(0.25)  # a tensor inside an object: not listed in the expected file


class EvilReduce:
    """pickle.dumps turns this into os.system('touch <marker>') (GLOBAL posix system + REDUCE). Never loaded."""

    def __reduce__(self):
        return (os.system, (TOUCH,))


# MARK: - good/

def good_files():
    """Writes good/ and returns [(file, loaded-or-source object, format)] for the expected files."""
    made = []

    def save(name, obj, fmt="torch-zip", check=True, **kwargs):
        path = os.path.join(GOOD, name)
        torch.save(obj, path, **kwargs)
        if fmt == "torch-legacy":
            write(path, canonical_legacy(read(path)))
        loaded = torch.load(path, weights_only=False) if check else obj
        if check:
            assert_same(obj, loaded, name)
        made.append((name, loaded, fmt))
        return path

    # One tensor per dtype, odd shapes, a 0-d scalar and empty tensors.
    seed("dtypes")
    dtypes = collections.OrderedDict()
    dtypes["float32.weight"] = torch.randn(3, 5)
    dtypes["float16.weight"] = torch.randn(2, 3, 4).half()
    dtypes["bfloat16.weight"] = torch.randn(7).bfloat16()
    dtypes["float64.weight"] = torch.randn(2, 1, 3).double()
    dtypes["int64.index"] = torch.randint(-1000, 1000, (4, 3))
    dtypes["int32.index"] = torch.randint(-1000, 1000, (5,), dtype=torch.int32)
    dtypes["uint8.pixels"] = torch.randint(0, 256, (3, 3), dtype=torch.uint8)
    dtypes["bool.mask"] = torch.rand(2, 5) > 0.5
    dtypes["scalar.float32"] = torch.tensor(3.25)
    dtypes["scalar.int64"] = torch.tensor(-7)
    dtypes["empty.float32"] = torch.zeros(0)
    dtypes["empty.float16"] = torch.zeros(0, 3, dtype=torch.float16)
    save("zip_dtypes.pt", dtypes)
    save("legacy_dtypes.pt", dtypes, fmt="torch-legacy", _use_new_zipfile_serialization=False)

    # Views of one storage: transposed, offset slice, strided slice, column, broadcast (stride 0), alias.
    seed("views")
    base = torch.randn(4, 6)
    halves = torch.randn(10).half()
    row = torch.randn(1, 5)
    views = collections.OrderedDict()
    views["base"] = base
    views["transposed"] = base.t()
    views["offset_slice"] = base[1:, 2:]
    views["strided"] = base[::2]
    views["column"] = base[:, 3]
    views["expanded"] = row.expand(3, 5)
    views["alias_of_base"] = base
    views["half_slice"] = halves[3:7]
    views["half_base"] = halves
    save("views.pt", views)
    save("views_legacy.pt", views, fmt="torch-legacy", _use_new_zipfile_serialization=False)
    assert torch.load(os.path.join(GOOD, "views.pt"), weights_only=False)["expanded"].stride() == (0, 1)

    # Lightning-style checkpoint with an LDM EMA, a real Adam state, hyper-parameters and callbacks.
    seed("lightning")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(1, 3, 5, 5)).square().mean().backward()
    optimizer.step()
    state = collections.OrderedDict()
    state["model.diffusion_model.input_blocks.0.0.weight"] = torch.randn(4, 3, 3, 3)
    state["model.diffusion_model.input_blocks.0.0.bias"] = torch.randn(4)
    state["model.diffusion_model.out.2.weight"] = torch.randn(3, 4, 1, 1)
    state["model.diffusion_model.out.2.bias"] = torch.randn(3)
    state["first_stage_model.decoder.conv_out.weight"] = torch.randn(3, 2, 1, 1).half()
    state["model_ema.decay"] = torch.tensor(0.9999)
    state["model_ema.num_updates"] = torch.tensor(100, dtype=torch.int32)
    state["model_ema.diffusion_modelinput_blocks00weight"] = torch.randn(4, 3, 3, 3)
    state["model_ema.diffusion_modelinput_blocks00bias"] = torch.randn(4)
    state["model_ema.diffusion_modelout2weight"] = torch.randn(3, 4, 1, 1)
    state["model_ema.diffusion_modelout2bias"] = torch.randn(3)
    hyper = AttributeDict(learning_rate=1e-4, unet_config={"channels": 4, "attention": [2, 4]}, ckpt_path=None)
    lightning = {
        "epoch": 3,
        "global_step": 100,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": state,
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [{"step_size": 10, "gamma": 0.5, "last_epoch": 1, "_last_lr": [0.001]}],
        "hyper_parameters": hyper,
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val/loss', 'mode': 'min'}": {
                "best_model_score": torch.tensor(0.125), "best_model_path": "/ckpt/epoch=3.ckpt",
                "kth_best_model_path": "", "best_k_models": {}},
            "HarmlessCallback": HarmlessCallbackState(),
        },
    }
    with fake_modules({"lightning.fabric.utilities.data": [AttributeDict]}):
        save("lightning.ckpt", lightning)

    # Wrappers: BasicSR params/params_ema, DataParallel prefix, RDDM EMA, torch.compile prefix.
    seed("wrapped")
    def small_sd(prefix=""):
        sd = collections.OrderedDict()
        sd[prefix + "conv_first.weight"] = torch.randn(4, 3, 3, 3)
        sd[prefix + "conv_first.bias"] = torch.randn(4)
        sd[prefix + "body.0.conv1.weight"] = torch.randn(4, 4, 1, 1)
        sd[prefix + "conv_last.weight"] = torch.randn(3, 4, 3, 3)
        return sd
    save("wrapped_params_ema.pth", {"params": small_sd(), "params_ema": small_sd()})
    save("wrapped_module.pth", {"model": {"module.conv.weight": torch.randn(2, 3, 1, 1),
                                          "module.conv.bias": torch.randn(2)}})
    save("rddm_ema.pt", {"step": 5, "model": small_sd(), "ema": {
        "ema_model.a.weight": torch.randn(2, 3), "online_model.a.weight": torch.randn(2, 3),
        "initted": torch.tensor([True]), "step": torch.tensor([5])}})
    save("compiled.pt", small_sd("_orig_mod."))
    save("parameters.pt", {"weight": torch.nn.Parameter(torch.randn(2, 3)),
                           "bias": torch.nn.Parameter(torch.randn(2), requires_grad=False)})

    # Pickle protocol variants (2 is torch's default).
    seed("protocols")
    proto = collections.OrderedDict(conv_weight=torch.randn(2, 3, 1, 1), flag=torch.tensor([True, False]),
                                    steps=torch.tensor(12), name_list=["a", "b"], scale=0.5)
    for p in (1, 4, 5):
        save(f"protocol{p}.pt", proto, pickle_protocol=p)

    # An unknown but harmless class in the non-weight part: must load, with a warning.
    seed("unknown_class")
    unknown = {"state_dict": collections.OrderedDict(conv_weight=torch.randn(2, 2, 3, 3), conv_bias=torch.randn(2)),
               "config": TrainConfig(lr=1e-4, channels=[32, 64], name="tiny")}
    with fake_modules({"mylib.config": [TrainConfig]}):
        path = save("unknown_class.pt", unknown)
        ops = [op.name for op, _, _ in pickletools.genops(zip_member(read(path), "data.pkl"))]
        assert "NEWOBJ" in ops and "BUILD" in ops, ops

    # Big-endian zip: data.pkl written like torch does, storages byte-swapped, byteorder = "big".
    seed("big_endian")
    big = collections.OrderedDict(
        w32=torch.randn(2, 3), w16=torch.randn(4).half(), wbf16=torch.randn(3).bfloat16(),
        w64=torch.randn(2).double(), i64=torch.randint(-5000, 5000, (3,)), i32=torch.randint(-9, 9, (2, 2), dtype=torch.int32),
        mask=torch.tensor([True, False, True]))
    records, storages = collections.OrderedDict(), {}
    for i, (key, t) in enumerate(big.items()):
        records[key] = TensorRecord(StorageRef(str(i), t.dtype, t.numel()), 0, t.shape, t.stride())
        storages[str(i)] = raw_bytes(t, big_endian=True)
    transposed = big["w32"].t()
    records["w32_t"] = TensorRecord(StorageRef("0", torch.float32, 6), 0, transposed.shape, transposed.stride())
    big["w32_t"] = transposed
    path = os.path.join(GOOD, "big_endian.pt")
    write(path, torch_zip(record_pickle(records), storages, prefix="big_endian", byteorder="big"))
    loaded = torch.load(path, weights_only=False)
    assert_same(big, loaded, "big_endian.pt")
    made.append(("big_endian.pt", loaded, "torch-zip"))

    # A hand-assembled little-endian zip (same writer as the hostile ones: proves the writer is sound).
    seed("handmade")
    hand = collections.OrderedDict(w=torch.randn(2, 2), b=torch.randn(2))
    records = collections.OrderedDict(
        w=TensorRecord(StorageRef("0", torch.float32, 4), 0, (2, 2), (2, 1)),
        b=TensorRecord(StorageRef("1", torch.float32, 2), 0, (2,), (1,)))
    path = os.path.join(GOOD, "handmade.pt")
    write(path, torch_zip(record_pickle(records), {"0": raw_bytes(hand["w"]), "1": raw_bytes(hand["b"])}))
    loaded = torch.load(path, weights_only=False)
    assert_same(hand, loaded, "handmade.pt")
    made.append(("handmade.pt", loaded, "torch-zip"))

    # safetensors with metadata.
    seed("safetensors")
    st = collections.OrderedDict(
        [("conv.weight", torch.randn(2, 3, 3, 3)), ("conv.bias", torch.randn(2).half()),
         ("norm.weight", torch.randn(5).bfloat16()), ("steps", torch.randint(0, 100, (3,)))])
    path = os.path.join(GOOD, "weights.safetensors")
    st_save_file(st, path, metadata={"format": "pt", "note": "checkpoint fixture"})
    canonical_safetensors(path)
    loaded = st_load_file(path)
    assert_same(dict(st), loaded, "weights.safetensors", ordered=False)
    made.append(("weights.safetensors", loaded, "safetensors"))

    # The same content as a legacy file written by this script's legacy writer (checks that writer).
    seed("handmade_legacy")
    w = torch.randn(3, 2)
    main = record_pickle({"w": TensorRecord(StorageRef("0", torch.float32, 6, legacy=True), 0, (3, 2), (2, 1)),
                          "wt": TensorRecord(StorageRef("0", torch.float32, 6, legacy=True), 0, (2, 3), (1, 2))})
    path = os.path.join(GOOD, "handmade_legacy.pt")
    write(path, legacy_file(main, ["0"], struct.pack("<Q", 6) + raw_bytes(w)))
    loaded = torch.load(path, weights_only=False)
    assert_same({"w": w, "wt": w.t()}, loaded, "handmade_legacy.pt")
    made.append(("handmade_legacy.pt", loaded, "torch-legacy"))

    for name, obj, fmt in made:
        write_expected(os.path.join(GOOD, name), obj, fmt)
    return [name for name, _, _ in made]


def assert_same(a, b, where, ordered=True):
    ta, tb = tensor_paths(a), tensor_paths(b)
    assert (list(ta) == list(tb)) if ordered else (sorted(ta) == sorted(tb)), (where, list(ta), list(tb))
    for key in ta:
        x, y = ta[key], tb[key]
        assert x.dtype == y.dtype and x.shape == y.shape and x.stride() == y.stride(), (where, key)
        assert torch.equal(x, y), (where, key)


def zip_member(data, suffix):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = [n for n in z.namelist() if n.endswith("/" + suffix) and n.count("/") == 1]
        assert len(names) == 1, names
        return z.read(names[0])


# MARK: - hostile/

MANIFEST = []
PAYLOADS = {}  # name -> (pickle bytes, expectation dict) for the offline checks


def hostile(name, data, error, why, fmt, hint=""):
    write(os.path.join(HOSTILE, name), data)
    MANIFEST.append({"file": name, "expect": "refused", "error_contains": error, "why": why, "format": fmt,
                     "detail_hint": hint.lower()})


REFUSED = "refusing the file"
ZIP, PICKLE, TENSOR, ST = "invalid zip", "invalid pickle", "invalid tensor record", "invalid safetensors"


def global_attacks():
    """Pickles that would run code in Python's unpickler; each wrapped as a torch zip and a legacy file."""
    marker_list = op_list(op_str("touch"), op_str(MARKER))
    nested_system = call("os", "system", op_str(TOUCH))
    attacks = [
        ("os-system", call("os", "system", op_str(TOUCH)), "os.system", "os.system('touch marker') via GLOBAL + REDUCE"),
        ("posix-system", call("posix", "system", op_str(TOUCH)), "posix.system", "posix.system via GLOBAL + REDUCE"),
        ("nt-system", call("nt", "system", op_str(TOUCH)), "nt.system", "nt.system (Windows os) via GLOBAL + REDUCE"),
        ("builtins-eval", call("builtins", "eval", op_str(f"__import__('os').system('{TOUCH}')")),
         "builtins.eval", "eval of a string that runs os.system"),
        ("builtins-exec", call("builtins", "exec", op_str(f"import os; os.system('{TOUCH}')")),
         "builtins.exec", "exec of a statement that runs os.system"),
        ("builtins-getattr",
         PROTO2 + op_global("builtins", "getattr") + MARK + op_global("builtins", "__import__") + MARK
         + op_str("os") + TUPLE + REDUCE + op_str("system") + TUPLE + REDUCE + MARK + op_str(TOUCH) + TUPLE
         + REDUCE + STOP,
         "builtins.getattr", "getattr(__import__('os'), 'system')('touch marker')"),
        ("builtins-import", call("builtins", "__import__", op_str("os")), "builtins.__import__",
         "__import__('os'): imports an arbitrary module"),
        ("subprocess-popen", call("subprocess", "Popen", marker_list), "subprocess.Popen",
         "subprocess.Popen(['touch', marker])"),
        ("subprocess-check-output", call("subprocess", "check_output", marker_list), "subprocess.check_output",
         "subprocess.check_output(['touch', marker])"),
        ("runpy-run-path", call("runpy", "run_path", op_str("/tmp/diffusionrestore-evil.py")), "runpy.run_path",
         "runpy.run_path runs a Python file"),
        ("importlib-import-module", call("importlib", "import_module", op_str("os")), "importlib.import_module",
         "importlib.import_module('os')"),
        ("shutil-rmtree", call("shutil", "rmtree", op_str("/tmp/diffusionrestore-nonexistent-dir")),
         "shutil.rmtree", "shutil.rmtree deletes a directory tree (points at a nonexistent path)"),
        ("socket-socket", call("socket", "socket", op_int(2), op_int(1)), "socket.socket",
         "socket.socket(AF_INET, SOCK_STREAM) opens a network socket"),
        ("pickle-loads", call("pickle", "loads", op_bytes(nested_system), proto=PROTO3), "pickle.loads",
         "pickle.loads of a nested pickle that calls os.system"),
        ("marshal-loads",
         call("marshal", "loads", op_bytes(marshal.dumps(compile(f"import os; os.system('{TOUCH}')", "<x>", "exec"))),
              proto=PROTO3),
         "marshal.loads", "marshal.loads of a code object"),
        ("torch-load-from-bytes",
         call("torch.storage", "_load_from_bytes", op_bytes(torch_zip(nested_system)), proto=PROTO3),
         "torch.storage._load_from_bytes", "torch.storage._load_from_bytes: a nested unrestricted torch.load"),
        ("inst-os-system", PROTO2 + MARK + op_str(TOUCH) + b"i" + b"os\nsystem\n" + STOP, "os.system",
         "os.system via the INST opcode (0x69)"),
        ("obj-os-system", PROTO2 + MARK + op_global("os", "system") + op_str(TOUCH) + b"o" + STOP, "os.system",
         "os.system via the OBJ opcode (0x6F)"),
        ("stack-global-reduce",
         PROTO4 + op_short_str("os") + op_short_str("system") + b"\x93" + op_short_str(TOUCH) + b"\x85" + REDUCE + STOP,
         "os.system", "os.system via STACK_GLOBAL (0x93) + REDUCE"),
        ("stack-global-newobj",
         PROTO4 + op_short_str("subprocess") + op_short_str("Popen") + b"\x93" + op_list(op_str("touch"), op_str(MARKER))
         + b"\x85" + b"\x81" + STOP,
         "subprocess.Popen", "subprocess.Popen via STACK_GLOBAL + NEWOBJ (0x81)"),
        ("stack-global-memo",
         PROTO4 + op_short_str("os") + b"\x94" + op_short_str("system") + b"\x94" + b"0" + b"0"
         + b"h\x00" + b"h\x01" + b"\x93" + op_short_str(TOUCH) + b"\x85" + REDUCE + STOP,
         "os.system", "os.system via STACK_GLOBAL whose names come back from the memo (MEMOIZE/BINGET)"),
        ("reduce-real-p2", pickle.dumps(EvilReduce(), protocol=2), "posix.system",
         "real pickle.dumps (protocol 2) of an object whose __reduce__ returns os.system"),
        ("reduce-real-p4", pickle.dumps(EvilReduce(), protocol=4), "posix.system",
         "real pickle.dumps (protocol 4: FRAME, STACK_GLOBAL, MEMOIZE) of a __reduce__ to os.system"),
        ("nested-in-dict",
         PROTO2 + EMPTY_DICT + op_str("state_dict") + EMPTY_DICT + op_str("payload")
         + op_global("os", "system") + MARK + op_str(TOUCH) + TUPLE + REDUCE + SETITEM + SETITEM + STOP,
         "os.system", "os.system hidden two dicts deep"),
    ]
    assert os.system.__module__ == "posix"
    for name, payload, target, why in attacks:
        PAYLOADS[name] = (payload, {"dis": True, "global": target})
        hostile(f"global-{name}.pt", torch_zip(payload), REFUSED, why + " (torch zip)", "torch-zip",
                f"refusing the file: its pickle names {target}")
        hostile(f"global-{name}.legacy.pt", legacy_file(payload), REFUSED, why + " (legacy container)",
                "torch-legacy", f"refusing the file: its pickle names {target}")

    # Real torch.save output with the forbidden global hidden in the callbacks / optimizer part.
    seed("hidden")
    sd = collections.OrderedDict([("model.conv.weight", torch.randn(2, 3, 1, 1)), ("model.conv.bias", torch.randn(2))])
    for where, obj in [
        ("callbacks", {"epoch": 1, "global_step": 10, "state_dict": sd,
                       "callbacks": {"EarlyStopping": {"wait_count": 0, "payload": EvilReduce()}}}),
        ("optimizer", {"epoch": 1, "global_step": 10, "state_dict": sd,
                       "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1, "params": [0], "hook": EvilReduce()}]}]}),
    ]:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        data = buffer.getvalue()
        PAYLOADS[f"lightning-hidden-{where}"] = (zip_member(data, "data.pkl"), {"dis": True, "global": "posix.system"})
        hostile(f"lightning-hidden-{where}.ckpt", data, REFUSED,
                f"valid torch.save Lightning-like checkpoint; posix.system hides in {where}", "torch-zip",
                "refusing the file: its pickle names posix.system")


def structural_attacks(valid_zip):
    def one(name, records, storages, error, why, hint):
        payload = record_pickle(records)
        PAYLOADS[name] = (payload, {"dis": True})
        hostile(name + ".pt", torch_zip(payload, storages), error, why, "torch-zip", hint)

    f32 = torch.float32
    sixteen = {"0": bytes(16)}
    one("tensor-huge-numel", {"w": TensorRecord(StorageRef("0", f32, 2**60), 0, (4,), (1,))}, sixteen, TENSOR,
        "storage declares 2**60 elements, its data entry holds 16 bytes", "declares 1152921504606846976 elements")
    one("tensor-negative-offset", {"w": TensorRecord(StorageRef("0", f32, 4), -2, (2,), (1,))}, sixteen, PICKLE,
        "tensor with storage offset -2", "storage offset must be a non-negative integer")
    one("tensor-negative-size", {"w": TensorRecord(StorageRef("0", f32, 4), 0, (-4,), (1,))}, sixteen, PICKLE,
        "tensor with size (-4,)", "negative or non-integer value")
    one("tensor-negative-stride", {"w": TensorRecord(StorageRef("0", f32, 4), 3, (4,), (-1,))}, sixteen, PICKLE,
        "tensor with stride (-1,) walking backwards from offset 3", "negative or non-integer value")
    one("tensor-extent-beyond-storage", {"w": TensorRecord(StorageRef("0", f32, 4), 0, (4, 4), (4, 1))}, sixteen,
        TENSOR, "size (4,4) stride (4,1) needs 16 elements, storage has 4", "needs 16 elements, its storage holds 4")
    one("tensor-offset-beyond-storage", {"w": TensorRecord(StorageRef("0", f32, 4), 100, (2,), (1,))}, sixteen,
        TENSOR, "storage offset 100 in a 4-element storage", "its storage holds 4")
    one("tensor-huge-shape", {"w": TensorRecord(StorageRef("0", f32, 4), 0, (2**40, 2**40), (0, 0))}, sixteen,
        TENSOR, "shape (2**40, 2**40) with zero strides: element count overflows", "are invalid")
    one("tensor-rank-mismatch", {"w": TensorRecord(StorageRef("0", f32, 4), 0, (2, 2), (1,))}, sixteen, PICKLE,
        "size has 2 dims, stride 1", "size and stride differ in length")
    one("storage-entry-missing", {"w": TensorRecord(StorageRef("7", f32, 4), 0, (4,), (1,))}, sixteen, ZIP,
        "persistent id names storage '7' but archive/data/7 does not exist", "missing entry archive/data/7")
    one("storage-data-short", {"w": TensorRecord(StorageRef("0", f32, 100), 0, (100,), (1,))}, sixteen, TENSOR,
        "storage declares 100 float32 elements, its data entry holds 16 bytes", "declares 100 elements, its data holds 16 bytes")
    one("storage-unknown-type",
        {"w": TensorRecord(StorageRef("0", f32, 2, storage_class=torch.ComplexFloatStorage), 0, (2,), (1,))},
        sixteen, PICKLE, "persistent id names torch.ComplexFloatStorage (no element type we read)",
        "storage type is not a torch storage class")

    # Zip-level attacks. A valid small checkpoint to start from:
    good_pickle = record_pickle({"w": TensorRecord(StorageRef("0", f32, 4), 0, (4,), (1,))})
    base_entries = [("archive/data.pkl", good_pickle), ("archive/data/0", bytes(16)), ("archive/version", b"3\n")]
    for i, bad in enumerate(["../evil", "/abs/path", "archive/../../x"]):
        hostile(f"zip-traversal-{i}.pt", make_zip(base_entries + [(bad, b"evil")]), ZIP,
                f"an entry named {bad!r}", "torch-zip", "is not a plain relative path")
    hostile("zip-traversal-backslash.pt", make_zip(base_entries + [("archive\\..\\..\\x", b"evil")]), ZIP,
            "an entry name with backslashes climbing out", "torch-zip", "is not a plain relative path")

    # Directory claims 65535 entries in 100 bytes.
    body = make_zip(base_entries)
    end = body.rfind(b"PK\x05\x06")
    _, _, _, _, _, _, directory_offset, _ = struct.unpack("<IHHHHIIH", body[end:end + 22])
    lie = body[:directory_offset] + body[directory_offset:end][:100].ljust(100, b"\0")
    lie += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 65535, 65535, 100, directory_offset, 0)
    hostile("zip-entry-count-lie.pt", lie, ZIP, "end record declares 65535 entries in a 100-byte directory",
            "torch-zip", "declares 65535 entries")

    # Overlapping entries. (a) Fifield's basic non-recursive bomb: two directory records, one local file.
    body = make_zip(base_entries, extra_central=[("archive/data/1", body.find(b"archive/data/0") - 30, 16)])
    hostile("zip-overlap-same-local.pt", body, ZIP,
            "two directory records point at the same local header (archive/data/1 aliases archive/data/0)",
            "torch-zip", "local header name differs")
    # (b) The quoted-overlap layout: entry A's data contains entry B's local header and data.
    inner = make_zip([("archive/data/1", bytes(16))])
    inner_local = inner[:inner.find(b"PK\x01\x02")]
    out = bytearray()
    central = bytearray()
    entries = [("archive/data.pkl", record_pickle({"w": TensorRecord(StorageRef("0", f32, 4), 0, (4,), (1,)),
                                                   "v": TensorRecord(StorageRef("1", f32, 4), 0, (4,), (1,))})),
               ("archive/data/0", inner_local), ("archive/version", b"3\n")]
    offsets = {}
    for name, data in entries:
        raw_name = name.encode()
        offsets[name] = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, zlib.crc32(data), len(data), len(data),
                           len(raw_name), 0) + raw_name + data
    offsets["archive/data/1"] = offsets["archive/data/0"] + 30 + len("archive/data/0")
    sizes = dict(entries)
    sizes["archive/data/1"] = bytes(16)
    for name in ["archive/data.pkl", "archive/data/0", "archive/data/1", "archive/version"]:
        raw_name, data = name.encode(), sizes[name]
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21, zlib.crc32(data), len(data),
                               len(data), len(raw_name), 0, 0, 0, 0, 0, offsets[name]) + raw_name
    directory_offset = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 4, 4, len(central), directory_offset, 0)
    hostile("zip-overlap-quoted.pt", bytes(out), ZIP,
            "entry archive/data/0's bytes contain archive/data/1's local header and data (overlapping entries)",
            "torch-zip", "entries overlap")

    # DEFLATE-compressed data.pkl: 10 MB of zeros (a small zip bomb), and a compressed storage.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(10 << 20)
    bomb = compressor.compress(zeros) + compressor.flush()
    hostile("zip-deflate-bomb.pt",
            make_zip([("archive/data.pkl", bomb, 8, len(zeros), zlib.crc32(zeros)), ("archive/version", b"3\n")]),
            ZIP, f"data.pkl DEFLATE-compressed: {len(bomb)} bytes inflate to 10 MB of zeros", "torch-zip",
            "is compressed")
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    storage = compressor.compress(bytes(16)) + compressor.flush()
    hostile("zip-deflate-storage.pt",
            make_zip([("archive/data.pkl", good_pickle), ("archive/data/0", storage, 8, 16, zlib.crc32(bytes(16))),
                      ("archive/version", b"3\n")]),
            ZIP, "the storage entry archive/data/0 is DEFLATE-compressed", "torch-zip", "is compressed")

    # Duplicate names.
    hostile("zip-duplicate-pickle.pt",
            make_zip(base_entries + [("archive/data.pkl", call("os", "system", op_str(TOUCH)))]), ZIP,
            "two archive/data.pkl entries (a benign one first, then os.system): readers could disagree",
            "torch-zip", "duplicate entry archive/data.pkl")
    hostile("zip-duplicate-storage.pt", make_zip(base_entries + [("archive/data/0", b"\xff" * 16)]), ZIP,
            "two archive/data/0 entries with different bytes", "torch-zip", "duplicate entry archive/data/0")

    # End records pointing outside the file.
    hostile("zip-eocd-past-end.pt", make_zip(base_entries, eocd_override={"offset": 0x7FFFFFF0}), ZIP,
            "end-of-central-directory places the directory past the end of the file", "torch-zip",
            "central directory outside the file")
    body = make_zip(base_entries)
    end = body.rfind(b"PK\x05\x06")
    locator = struct.pack("<IIQI", 0x07064B50, 0, 2**40, 1)
    hostile("zip64-locator-past-end.pt", body[:end] + locator + body[end:], ZIP,
            "zip64 locator points at an end record 1 TB into a small file", "torch-zip",
            "zip64 end record outside the file")
    hostile("zip-local-offset-past-end.pt", make_zip(base_entries, extra_central=[("archive/data/9", 1 << 30, 16)]),
            ZIP, "a directory record whose local header offset is 1 GB into a small file", "torch-zip",
            "starts outside the file")

    # Truncations of a valid torch.save checkpoint.
    for label, size in [("10", 10), ("half", len(valid_zip) // 2), ("minus10", len(valid_zip) - 10)]:
        hostile(f"zip-truncated-{label}.pt", valid_zip[:size], ZIP,
                f"good/zip_dtypes.pt cut to {size} of {len(valid_zip)} bytes", "torch-zip",
                "file too short" if size < 22 else "no end-of-central-directory record")


def pickle_attacks(valid_pickle):
    def one(name, payload, why, hint, dis_ok, legacy=False, error=PICKLE):
        PAYLOADS[name] = (payload, {"dis": dis_ok})
        hostile(f"pickle-{name}.pt", torch_zip(payload), error, why + " (torch zip)", "torch-zip", hint)
        if legacy:
            hostile(f"pickle-{name}.legacy.pt", legacy_file(payload), error, why + " (legacy container)",
                    "torch-legacy", hint)

    one("truncated", valid_pickle[:-25], "a real data.pkl without its last 25 bytes (no STOP)", "", False, legacy=True)
    n = 100_000
    one("deep-list", PROTO2 + b"]" * n + b"a" * (n - 1) + STOP,
        f"{n} nested lists (EMPTY_LIST ... APPEND)", "nesting deeper than", True, legacy=False)
    one("deep-mark-tuple", PROTO2 + b"(" * n + b"t" * n + STOP,
        f"{n} nested MARK ... TUPLE", "marks", True, legacy=False)
    one("deep-tuple1", PROTO2 + b")" + b"\x85" * (n // 5) + STOP,
        f"{n // 5} nested TUPLE1 around an empty tuple (no marks)", "nesting deeper than", True, legacy=False)
    one("many-marks", PROTO2 + b"(" * 70_000 + b"N" + STOP,
        "70000 MARKs (more than 65536) that are never closed", "marks", True, legacy=False)
    one("binget-unset", PROTO2 + b"h\x05" + STOP, "BINGET 5 with an empty memo", "memo has no entry 5", False, legacy=True)
    one("long-binget-unset", PROTO2 + EMPTY_DICT + b"q\x00" + b"j" + struct.pack("<I", 0xFFFFFFF0) + STOP,
        "LONG_BINGET of an index never stored", "memo has no entry", False)
    one("binunicode8-huge", PROTO4 + b"\x8d" + struct.pack("<Q", 2**62) + b"abc" + STOP,
        "BINUNICODE8 declaring 2**62 bytes", "declares 4611686018427387904 bytes", False, legacy=True)
    one("binunicode-huge", PROTO2 + b"X" + struct.pack("<I", 0xFFFFFFFF) + b"abc" + STOP,
        "BINUNICODE declaring 4 GB in a tiny stream", "truncated", False)
    one("binbytes8-huge", PROTO4 + b"\x8e" + struct.pack("<Q", 2**63 - 1) + b"abc" + STOP,
        "BINBYTES8 declaring 2**63-1 bytes", "declares", False)
    one("long4-negative", PROTO2 + b"\x8b" + struct.pack("<i", -5) + STOP, "LONG4 with length -5",
        "negative long4 length", False, legacy=True)
    one("opcode-ff", PROTO2 + b"N" + b"\xff" + STOP, "unknown opcode 0xFF", "unsupported opcode 0xff", False, legacy=True)
    one("protocol-6", b"\x80\x06" + b"N" + STOP,
        "PROTO 6 (no such protocol; pickletools decodes it, Python's Unpickler refuses it)", "unsupported protocol 6",
        True)
    one("stop-two-values", PROTO2 + b"N" + b"N" + STOP, "STOP with two values on the stack",
        "stop with 2 values on the stack", False, legacy=True)
    one("stop-empty", PROTO2 + STOP, "STOP with an empty stack", "stop with 0 values on the stack", False)
    one("pop-underflow", PROTO2 + b"0" + b"N" + STOP, "POP on an empty stack", "stack underflow", False)
    one("bad-utf8", PROTO2 + b"X" + struct.pack("<I", 3) + b"a\xff\xfe" + STOP, "BINUNICODE holding invalid UTF-8",
        "not valid utf-8", False)
    one("global-line-too-long", PROTO2 + b"c" + b"m" * 300 + b"\nname\n" + STOP, "GLOBAL with a 300-byte module line",
        "longer than 256 bytes", True)
    one("setitems-odd", PROTO2 + EMPTY_DICT + MARK + op_str("a") + b"u" + STOP, "SETITEMS with an odd item count",
        "odd number", True)
    # A dict whose key "w" appears twice, holding two different tensors.
    dup = (PROTO2 + EMPTY_DICT + op_str("w") + tensor_ops("0") + SETITEM + op_str("w") + tensor_ops("1") + SETITEM + STOP)
    PAYLOADS["duplicate-key"] = (dup, {"dis": True})
    hostile("pickle-duplicate-key.pt", torch_zip(dup, {"0": bytes(16), "1": b"\x00\x00\x80\x3f" * 4}), PICKLE,
            "dict with key 'w' set twice to different tensors (Python keeps the last one)", "torch-zip",
            "duplicate dict key \"w\"")


def tensor_ops(key):
    """A float32 [4] tensor record on storage `key`, as hand-assembled opcodes (what torch.save writes)."""
    pid = MARK + op_str("storage") + op_global("torch", "FloatStorage") + op_str(key) + op_str("cpu") + op_int(4) + TUPLE
    return (op_global("torch._utils", "_rebuild_tensor_v2") + MARK + pid + b"Q" + op_int(0) + op_int(4) + b"\x85"
            + op_int(1) + b"\x85" + b"\x89" + op_global("collections", "OrderedDict") + b")" + REDUCE + TUPLE + REDUCE)


def legacy_attacks(valid_legacy):
    def one(name, data, error, why, hint):
        hostile(name, data, error, why, "torch-legacy", hint)

    huge = 2**40
    main = record_pickle({"w": TensorRecord(StorageRef("0", torch.float32, huge, legacy=True), 0, (4,), (1,))})
    one("legacy-storage-count-past-end.pt", legacy_file(main, ["0"], struct.pack("<Q", huge) + bytes(16)), TENSOR,
        "legacy storage of 2**40 float32 elements (pickle and count agree) in a tiny file",
        "extends past the end of the file")
    main = record_pickle({"w": TensorRecord(StorageRef("0", torch.float32, 4, legacy=True), 0, (4,), (1,))})
    one("legacy-storage-count-mismatch.pt", legacy_file(main, ["0"], struct.pack("<Q", huge) + bytes(16)), TENSOR,
        "pickle declares 4 elements, the storage header says 2**40", "the pickle declares 4")
    one("legacy-storage-unused-key.pt", legacy_file(main, ["9"], struct.pack("<Q", 4) + bytes(16)), TENSOR,
        "storage key list names '9', which no tensor uses", "storage listed but never used")
    one("legacy-storage-listed-twice.pt", legacy_file(main, ["0", "0"], (struct.pack("<Q", 4) + bytes(16)) * 2),
        TENSOR, "storage key '0' listed twice", "storage listed twice")
    one("legacy-bad-version.pt", legacy_file(main, ["0"], struct.pack("<Q", 4) + bytes(16), version=1002), PICKLE,
        "legacy protocol version 1002", "unknown legacy protocol version")
    one("legacy-key-list-not-list.pt",
        legacy_file(main)[:-len(pickle.dumps([], protocol=2))] + pickle.dumps("0", protocol=2) + struct.pack("<Q", 4),
        PICKLE, "the storage key list is a string", "storage key list is not a list")
    one("legacy-truncated.pt", valid_legacy[:-10], TENSOR,
        "a real legacy file (one 16-element float32 storage) without its last 10 bytes",
        "extends past the end of the file")


def safetensors_file(header, data=b"", pad=True, raw_header=None):
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_attacks():
    def one(name, data, why, hint, error=ST):
        hostile(name, data, error, why, "safetensors", hint)

    entry = lambda dtype, shape, begin, end: {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
    ok = safetensors_file({"a": entry("F32", [2], 0, 8)}, bytes(8))
    assert st_load_file_bytes(ok)
    either = "safetensors"  # refused as unknown format ("... or a safetensors file") or as invalid safetensors
    body = ok[8:]
    one("st-header-longer-than-file.safetensors", struct.pack("<Q", len(body) + 100) + body,
        "header length 100 bytes beyond the end of the file", "runs past the end of the file", error=either)
    one("st-header-2pow63.safetensors", struct.pack("<Q", 2**63) + body, "header length 2**63", "exceeds", error=either)
    one("st-header-200mb.safetensors", struct.pack("<Q", 200 << 20) + body,
        "header length 200 MB declared (file is tiny)", "exceeds", error=either)
    one("st-json-not-object.safetensors", safetensors_file(None, b"", raw_header=b"[1,2,3]"),
        "header JSON is an array", "header is not a json object", error=either)
    one("st-entry-not-object.safetensors", safetensors_file({"a": 5}), "a tensor entry that is a number",
        "is not an object")
    one("st-trailing-json.safetensors", safetensors_file(None, raw_header=b'{}{"a":1}'),
        "two JSON values in the header", "trailing characters")
    one("st-unknown-dtype.safetensors", safetensors_file({"a": entry("F128", [2], 0, 32)}, bytes(32)),
        "dtype F128", "unknown or missing dtype")
    one("st-offsets-overlap.safetensors",
        safetensors_file({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}, bytes(12)),
        "two tensors share bytes 4..<8", "overlaps another tensor")
    one("st-offsets-past-end.safetensors", safetensors_file({"a": entry("F32", [4], 0, 16)}, bytes(8)),
        "data_offsets end at 16, data section has 8 bytes", "past the data section")
    one("st-offsets-reversed.safetensors", safetensors_file({"a": entry("F32", [0], 8, 0)}, bytes(8)),
        "data_offsets [8, 0]", "bad data_offsets")
    one("st-offsets-gap.safetensors", safetensors_file({"a": entry("F32", [1], 4, 8)}, bytes(8)),
        "4 unclaimed bytes before the only tensor", "gap before")
    one("st-trailing-bytes.safetensors", safetensors_file({"a": entry("F32", [1], 0, 4)}, bytes(12)),
        "8 bytes after the last tensor", "bytes after the last tensor")
    one("st-shape-bytes-mismatch.safetensors", safetensors_file({"a": entry("F32", [3], 0, 8)}, bytes(8)),
        "shape [3] of F32 needs 12 bytes, offsets give 8", "has shape [3] of f32 but 8 bytes")
    one("st-negative-shape.safetensors", safetensors_file({"a": entry("F32", [-2], 0, 8)}, bytes(8)),
        "shape [-2]", "bad shape")
    one("st-huge-shape.safetensors", safetensors_file({"a": entry("F32", [2**40, 2**40], 0, 8)}, bytes(8)),
        "shape [2**40, 2**40]: element count overflows", "has shape")
    one("st-float-offsets.safetensors", safetensors_file({"a": entry("F32", [2], 0.5, 8)}, bytes(8)),
        "fractional data_offsets", "bad data_offsets")
    depth = 100_000
    one("st-deep-json.safetensors", safetensors_file(None, raw_header=b'{"a":' + b"[" * depth + b"]" * 4 + b"}"),
        f"header JSON opening {depth} nested arrays (not all closed)", "nesting deeper than")
    one("st-duplicate-keys.safetensors",
        safetensors_file(None, bytes(8), raw_header=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                         b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'),
        "the key \"a\" twice in the header", "duplicate key")
    one("st-invalid-utf8.safetensors",
        safetensors_file(None, bytes(8), raw_header=b'{"a\xff\xfe":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
        "a tensor name with invalid UTF-8 bytes", "not valid utf-8")
    one("st-metadata-not-string.safetensors",
        safetensors_file({"__metadata__": {"n": 1}, "a": entry("F32", [2], 0, 8)}, bytes(8)),
        "__metadata__ value that is a number", "is not a string")
    one("st-control-char.safetensors",
        safetensors_file(None, bytes(8), raw_header=b'{"a\x01":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
        "a raw control character inside a JSON string", "control character")
    one("st-truncated-header.safetensors", safetensors_file(None, raw_header=b'{"a":{"dtype":"F32","sha'),
        "header JSON cut off mid-object", "unterminated string")
    one("st-short.safetensors", struct.pack("<I", 2) + b"{}", "6 bytes: shorter than the 8-byte length",
        "", error=either)


def st_load_file_bytes(data):
    from safetensors.torch import load
    return load(data)


# MARK: - fuzz-seeds/

def fuzz_seeds():
    made = []

    def seed_file(name, data):
        assert len(data) < 8192, (name, len(data))
        write(os.path.join(SEEDS, name), data)
        made.append(name)

    for good in ["zip_dtypes.pt", "views.pt", "protocol1.pt", "protocol4.pt", "unknown_class.pt",
                 "parameters.pt", "big_endian.pt"]:
        seed_file("pickle-good-" + good.replace(".pt", "").replace("_", "-") + ".bin",
                  zip_member(read(os.path.join(GOOD, good)), "data.pkl"))
    lightning = zip_member(read(os.path.join(GOOD, "lightning.ckpt")), "data.pkl")
    if len(lightning) < 8192:
        seed_file("pickle-good-lightning.bin", lightning)
    for name in ["os-system", "inst-os-system", "obj-os-system", "stack-global-newobj", "stack-global-memo",
                 "reduce-real-p4", "builtins-getattr", "truncated", "binget-unset", "binunicode8-huge",
                 "long4-negative", "opcode-ff", "stop-two-values", "duplicate-key", "tensor-negative-stride"]:
        seed_file(f"pickle-hostile-{name}.bin", PAYLOADS[name][0])
    seed_file("safetensors-good-weights.bin", read(os.path.join(GOOD, "weights.safetensors")))
    seed_file("safetensors-good-empty.bin", safetensors_file({}))
    for name in ["st-offsets-overlap", "st-duplicate-keys", "st-unknown-dtype", "st-invalid-utf8",
                 "st-shape-bytes-mismatch"]:
        seed_file("safetensors-hostile-" + name[3:] + ".bin", read(os.path.join(HOSTILE, name + ".safetensors")))
    return made


# MARK: - Offline checks (never unpickle anything hostile)

def globals_named(payload):
    """Module.name of every GLOBAL / INST / STACK_GLOBAL, decoded with pickletools.genops only."""
    found, strings, memo = [], [], {}
    for op, arg, _ in pickletools.genops(payload):
        if op.name in ("GLOBAL", "INST"):
            found.append(arg.replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            strings.append(memo.get(arg))
        elif op.name == "STACK_GLOBAL":
            found.append(f"{strings[-2]}.{strings[-1]}")
    return found


def decodes(payload):
    try:
        if len(payload) < 20_000:
            pickletools.dis(payload, out=io.StringIO())
        else:  # dis indents per open MARK (quadratic output); genops is the same decoder without stack checks
            for _ in pickletools.genops(payload):
                pass
        return True
    except Exception:  # noqa: BLE001 - any decoding failure is the point
        return False


def check_hostile():
    for name, (payload, expect) in PAYLOADS.items():
        ok = decodes(payload)
        assert ok == expect["dis"], (name, ok, expect)
        if "global" in expect:
            assert expect["global"] in globals_named(payload), (name, globals_named(payload))
    for entry in MANIFEST:
        assert os.path.exists(os.path.join(HOSTILE, entry["file"])), entry
    names = [e["file"] for e in MANIFEST]
    assert len(names) == len(set(names))
    # The deep-JSON header really is beyond Python's own parser.
    deep = read(os.path.join(HOSTILE, "st-deep-json.safetensors"))
    try:
        json.loads(deep[8:])
        raise AssertionError("deep JSON parsed")
    except RecursionError:
        pass
    assert not os.path.exists(MARKER), "marker exists: something ran a payload"


def main():
    for folder in (GOOD, HOSTILE, SEEDS):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    good = good_files()

    valid_zip = read(os.path.join(GOOD, "zip_dtypes.pt"))
    seed("legacy_truncated")
    buffer = io.BytesIO()
    torch.save({"w": torch.randn(16)}, buffer, _use_new_zipfile_serialization=False)
    global_attacks()
    structural_attacks(valid_zip)
    pickle_attacks(zip_member(valid_zip, "data.pkl"))
    legacy_attacks(canonical_legacy(buffer.getvalue()))
    safetensors_attacks()
    with open(os.path.join(HOSTILE, "manifest.json"), "w") as f:
        json.dump(MANIFEST, f, indent=1)
        f.write("\n")
    seeds = fuzz_seeds()
    check_hostile()

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"good: {len(good)} files (+ expected), hostile: {len(MANIFEST)}, fuzz-seeds: {len(seeds)}, "
          f"total {total} bytes")
    assert total < 1_500_000, total


if __name__ == "__main__":
    main()
