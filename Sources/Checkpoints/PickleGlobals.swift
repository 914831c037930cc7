/// What a pickle global was taken to be. Only the first few kinds have any effect, and that effect is
/// computed here in Swift (building a dict, a tuple or a tensor record); nothing is ever called.
public enum PickleGlobalKind: Sendable, Equatable {
    /// `collections.OrderedDict`, `defaultdict`, `builtins.dict`, Lightning's `AttributeDict`: builds a dict.
    case dictionary
    /// `builtins.set` / `frozenset`: builds a set from a list.
    case set
    /// `torch.Size`, `builtins.tuple`: builds a tuple.
    case tuple
    /// `torch._utils._rebuild_tensor_v2` (and the older `_rebuild_tensor`).
    case rebuildTensor
    /// `torch._utils._rebuild_parameter` / `_rebuild_parameter_with_state`: the tensor argument itself.
    case rebuildParameter
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: applies `func` (itself allow-listed).
    case rebuildFromType
    /// `torch.<Type>Storage`: names a storage element type in persistent ids.
    case storageType(ElementType)
    /// `copyreg._reconstructor(cls, base, state)`: an inert instance of `cls`.
    case reconstructor
    /// Known harmless data classes (dtypes, `torch.device`, numpy scalars): inert, no warning.
    case knownInert
    /// Any other class: an inert placeholder, named in the load's warning.
    case unknownInert
}

/// The allow-list and the deny-list for pickle globals.
///
/// Safety does not rest on the deny-list: the reader never calls anything, so even `os.system` would be
/// inert. The deny-list decides which files are *refused* because they evidently try to run code.
public enum PickleGlobals {
    /// Resolves `module.name`, or throws `CheckpointError.forbiddenGlobal`.
    public static func resolve(module: String, name: String) throws -> PickleGlobalKind {
        if isForbidden(module: module, name: name) { throw CheckpointError.forbiddenGlobal(module: module, name: name) }
        let qualified = module + "." + name
        if let kind = allowed[qualified] { return kind }
        if module == "torch", name.hasSuffix("Storage"), let type = ElementType(torchStorageName: name) { return .storageType(type) }
        if module == "torch.storage", name == "UntypedStorage" { return .storageType(.uint8) }
        if module == "torch", torchDtypeNames.contains(name) { return .knownInert }
        return .unknownInert
    }

    static let allowed: [String: PickleGlobalKind] = {
        var table: [String: PickleGlobalKind] = [
            "collections.OrderedDict": .dictionary,
            "collections.defaultdict": .dictionary,
            "builtins.dict": .dictionary,
            "__builtin__.dict": .dictionary,
            "builtins.set": .set, "builtins.frozenset": .set, "__builtin__.set": .set, "__builtin__.frozenset": .set,
            "builtins.tuple": .tuple, "torch.Size": .tuple,
            "torch._utils._rebuild_tensor_v2": .rebuildTensor,
            "torch._utils._rebuild_tensor": .rebuildTensor,
            "torch._utils._rebuild_parameter": .rebuildParameter,
            "torch._utils._rebuild_parameter_with_state": .rebuildParameter,
            "torch._tensor._rebuild_from_type_v2": .rebuildFromType,
            "copyreg._reconstructor": .reconstructor,
            "copy_reg._reconstructor": .reconstructor,
            "torch.device": .knownInert,
            "torch.nn.parameter.Parameter": .knownInert,
            "torch.Tensor": .knownInert,
            "builtins.object": .knownInert, "builtins.int": .knownInert, "builtins.float": .knownInert,
            "builtins.str": .knownInert, "builtins.bool": .knownInert, "builtins.bytes": .knownInert,
            "builtins.bytearray": .knownInert, "builtins.complex": .knownInert, "builtins.slice": .knownInert,
            "builtins.list": .knownInert, "builtins.range": .knownInert,
            "numpy.dtype": .knownInert, "numpy.ndarray": .knownInert,
            "numpy.core.multiarray.scalar": .knownInert, "numpy._core.multiarray.scalar": .knownInert,
            "numpy.core.multiarray._reconstruct": .knownInert, "numpy._core.multiarray._reconstruct": .knownInert,
        ]
        for module in ["pytorch_lightning.utilities.parsing", "lightning.pytorch.utilities.parsing",
                       "lightning_fabric.utilities.data", "lightning.fabric.utilities.data"] {
            table[module + ".AttributeDict"] = .dictionary
        }
        return table
    }()

    static let torchDtypeNames: Set<String> = [
        "float64", "double", "float32", "float", "float16", "half", "bfloat16", "int64", "long", "int32", "int",
        "int16", "short", "int8", "uint8", "bool", "complex64", "complex128", "strided", "preserve_format",
    ]

    /// Modules (and their submodules) that can run code, load code, or touch files, processes or the network.
    static let forbiddenModules: Set<String> = [
        "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "sys", "importlib", "runpy", "shutil", "socket",
        "pickle", "_pickle", "cPickle", "marshal", "ctypes", "_ctypes", "code", "codeop", "pty", "commands",
        "platform", "multiprocessing", "threading", "_thread", "signal", "io", "_io", "tempfile", "pathlib", "glob",
        "webbrowser", "http", "urllib", "urllib2", "httplib", "requests", "aiohttp", "ftplib", "smtplib", "telnetlib",
        "asyncio", "types", "functools", "_functools", "operator", "_operator", "inspect", "gc", "weakref", "pdb", "bdb",
        "pydoc", "timeit", "trace", "cProfile", "profile", "distutils", "setuptools", "pip", "venv", "zipimport",
        "pkgutil", "site", "dill", "cloudpickle", "joblib", "_posixsubprocess", "fcntl", "mmap", "select",
        "numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.lib.npyio", "numpy.load",
        "torch._C", "torch.jit", "torch.hub", "torch.ops", "torch._ops", "torch.serialization", "torch.package",
        "torch._inductor", "torch._dynamo", "torch.utils.cpp_extension", "torch.distributed", "torch.multiprocessing",
    ]

    /// Builtins that are pure data constructors; every other builtin (eval, exec, getattr, open, …) is refused.
    static let harmlessBuiltins: Set<String> = [
        "dict", "set", "frozenset", "tuple", "list", "object", "int", "float", "str", "bool", "bytes",
        "bytearray", "complex", "slice", "range",
    ]

    /// Names that run code whatever module they are fetched from.
    static let forbiddenNames: Set<String> = [
        "eval", "exec", "execfile", "compile", "__import__", "getattr", "setattr", "delattr", "open", "system",
        "popen", "spawn", "load", "loads", "save", "runstring", "run", "call", "check_call", "check_output",
        "apply", "globals", "locals", "vars", "breakpoint", "input",
    ]

    static func isForbidden(module: String, name: String) -> Bool {
        if module == "builtins" || module == "__builtin__" { return !harmlessBuiltins.contains(name) }
        if module == "copyreg" || module == "copy_reg" { return name != "_reconstructor" }
        if module == "torch.storage", name == "_load_from_bytes" { return true }  // a nested, unrestricted torch.load
        if module == "torch", ["load", "save"].contains(name) { return true }
        if forbiddenNames.contains(name) { return true }
        var prefix = Substring(module)
        while true {
            if forbiddenModules.contains(String(prefix)) { return true }
            guard let dot = prefix.lastIndex(of: ".") else { return false }
            prefix = prefix[..<dot]
        }
    }
}
