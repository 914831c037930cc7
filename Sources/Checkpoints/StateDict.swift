import Engine

/// Where in a checkpoint the weights are, and how their names are written.
///
/// Official files wrap their state dicts differently: Lightning keeps them under `state_dict`, BasicSR
/// under `params_ema` / `params`, RDDM's EMA under `ema` with an `ema_model.` prefix, LDM's EMA copy
/// under `model_ema.` with the dots after the prefix stripped, DataParallel and `torch.compile` add
/// `module.` and `_orig_mod.`. `.auto` picks the usual one; the other cases choose explicitly.
public struct StateDictSelection: Sendable, Equatable, CustomStringConvertible {
    /// A dotted path of dict keys from the file's root to the state dict (`""` = the root); nil = find it.
    public var entry: String?
    /// Keep only keys starting with this prefix, and strip it (e.g. `ema_model.`, `model.diffusion_model.`).
    public var prefix: String?

    public init(entry: String? = nil, prefix: String? = nil) {
        self.entry = entry
        self.prefix = prefix
    }

    /// The usual state dict: see `Checkpoint.stateDict(_:)`.
    public static let auto = StateDictSelection()

    /// Parses the command line's `--state-dict` value: `ENTRY`, `ENTRY:PREFIX`, or `:PREFIX` (root).
    public init(parsing text: String) {
        if let colon = text.firstIndex(of: ":") {
            entry = String(text[..<colon])
            let rest = String(text[text.index(after: colon)...])
            prefix = rest.isEmpty ? nil : rest
        } else {
            entry = text
            prefix = nil
        }
    }

    public var description: String {
        switch (entry, prefix) {
        case (nil, nil): return "auto"
        case (let e?, nil): return e.isEmpty ? "(root)" : e
        case (let e, let p?): return "\(e ?? "auto"):\(p)"
        }
    }
}

/// A flat, ordered name → tensor map: the weights of one network as stored, before binding.
public struct StateDict: Sendable {
    /// The tensors in file order, by name (prefixes already stripped).
    public let tensors: [(name: String, tensor: StoredTensor)]
    /// Where the tensors were found, e.g. `state_dict`, `params_ema`, `ema (prefix ema_model.)`.
    public let source: String
    private let index: [String: Int]

    public init(tensors: [(name: String, tensor: StoredTensor)], source: String) throws {
        var index: [String: Int] = [:]
        for (position, entry) in tensors.enumerated() {
            guard index[entry.name] == nil else { throw CheckpointError.invalidTensor(key: entry.name, reason: "two tensors have this name") }
            index[entry.name] = position
        }
        self.tensors = tensors
        self.source = source
        self.index = index
    }

    /// The stored tensor named `name`.
    public subscript(name: String) -> StoredTensor? { index[name].map { tensors[$0].tensor } }

    /// The names, in file order.
    public var names: [String] { tensors.map(\.name) }

    /// The total number of elements (parameters and buffers).
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.tensor.elementCount } }
}

// MARK: - Finding the state dict

extension Checkpoint {
    /// Wrapper keys tried in order when the root is not itself a state dict. BasicSR's `params_ema` comes
    /// before `params`, and RDDM's `ema` before its `model`: the official code samples with the EMA weights.
    public static let stateDictWrapperKeys = ["state_dict", "params_ema", "ema", "params", "model", "model_state_dict", "net", "generator", "module"]

    /// The weights: the root dict when it holds tensors, else the first wrapper of `stateDictWrapperKeys`
    /// that does; then RDDM's `ema_model.` prefix is selected when present, and a `module.` /
    /// `_orig_mod.` prefix carried by every key is stripped. Non-tensor values are skipped.
    public func stateDict(_ selection: StateDictSelection = .auto) throws -> StateDict {
        if pickle == nil {
            if let entry = selection.entry, !entry.isEmpty {
                throw CheckpointError.stateDictNotFound(reason: "a safetensors file is flat; it has no entry \(entry.debugDescription) (\(path))")
            }
            return try Self.finish(flatTensors, source: "(root)", prefix: selection.prefix, path: path)
        }
        let candidates = tensorDicts()
        let chosen: (path: String, tensors: [(String, StoredTensor)])
        if let entry = selection.entry {
            guard let match = candidates.first(where: { $0.path == entry }) else {
                let known = candidates.map { $0.path.isEmpty ? "(root)" : $0.path }.prefix(12).joined(separator: ", ")
                throw CheckpointError.stateDictNotFound(reason: "no dict of tensors at \(entry.isEmpty ? "(root)" : entry.debugDescription); found: \(known.isEmpty ? "none" : known) (\(path))")
            }
            chosen = (match.path, match.tensors)
        } else if let root = candidates.first(where: { $0.path.isEmpty }), root.tensors.count * 2 >= max(1, root.valueCount) {
            chosen = (root.path, root.tensors)
        } else if let wrapped = Self.stateDictWrapperKeys.lazy.compactMap({ key in candidates.first { $0.path == key } }).first {
            chosen = (wrapped.path, wrapped.tensors)
        } else if let largest = candidates.max(by: { $0.tensors.count < $1.tensors.count }) {
            chosen = (largest.path, largest.tensors)
        } else {
            throw CheckpointError.stateDictNotFound(reason: "the file holds no dict of tensors; top-level keys: \(topLevelKeys.prefix(12).joined(separator: ", ")) (\(path))")
        }
        var prefix = selection.prefix
        if selection == .auto, chosen.tensors.contains(where: { $0.0.hasPrefix("ema_model.") }) { prefix = "ema_model." }
        return try Self.finish(chosen.tensors, source: chosen.path.isEmpty ? "(root)" : chosen.path, prefix: prefix, path: path)
    }

    /// Applies the prefix (or strips a universal `module.` / `_orig_mod.`), keeping file order.
    static func finish(_ tensors: [(String, StoredTensor)], source: String, prefix: String?, path: String) throws -> StateDict {
        if let prefix {
            let kept = tensors.filter { $0.0.hasPrefix(prefix) }.map { (name: String($0.0.dropFirst(prefix.count)), tensor: $0.1) }
            guard !kept.isEmpty else { throw CheckpointError.stateDictNotFound(reason: "no key in \(source) starts with \(prefix.debugDescription) (\(path))") }
            return try StateDict(tensors: kept, source: "\(source) (prefix \(prefix))")
        }
        var named = tensors.map { (name: $0.0, tensor: $0.1) }
        for wrapper in ["module.", "_orig_mod."] where !named.isEmpty && named.allSatisfy({ $0.name.hasPrefix(wrapper) }) {
            named = named.map { (name: String($0.name.dropFirst(wrapper.count)), tensor: $0.tensor) }
        }
        return try StateDict(tensors: named, source: source)
    }

    /// Every dict in the pickle that holds at least one tensor directly, with its dotted path from the
    /// root (dict keys and list indices), in file order. Walked with an explicit stack, so deep files
    /// cannot overflow Swift's.
    func tensorDicts() -> [(path: String, tensors: [(String, StoredTensor)], valueCount: Int)] {
        guard let pickle else { return [] }
        // Paths are built only for dicts that hold tensors, from (parent, key) links, so hostile nesting costs
        // linear time; containers deeper than `maximumDepth` are not searched for state dicts.
        let maximumDepth = 64
        var links: [(parent: Int, key: String)] = [(-1, "")]
        func path(_ link: Int) -> String {
            var parts: [String] = []
            var current = link
            while current > 0 { parts.append(links[current].key); current = links[current].parent }
            return parts.reversed().joined(separator: ".")
        }
        var found: [(path: String, tensors: [(String, StoredTensor)], valueCount: Int)] = []
        var pending: [(index: Int, link: Int, depth: Int)] = []
        var visited = Set<Int>()
        if case .reference(let root) = pickle.root { pending.append((root, 0, 0)); visited.insert(root) }
        while let (index, link, depth) = pending.popLast() {
            var children: [(Int, String)] = []
            switch pickle.heap.objects[index] {
            case .dict(let dict):
                var tensors: [(String, StoredTensor)] = []
                for (key, item) in zip(dict.keys, dict.values) {
                    let name: String
                    switch key {
                    case .string(let s): name = s
                    case .int(let i): name = String(i)
                    default: continue
                    }
                    if let tensor = pickle.tensor(item) { tensors.append((name, tensor)) }
                    else if case .reference(let child) = item { children.append((child, name)) }
                }
                if !tensors.isEmpty { found.append((path(link), tensors, dict.count)) }
            case .list(let list):
                for (i, item) in list.items.enumerated() { if case .reference(let child) = item { children.append((child, String(i))) } }
            case .tuple(let items):
                for (i, item) in items.enumerated() { if case .reference(let child) = item { children.append((child, String(i))) } }
            default:
                break
            }
            guard depth < maximumDepth else { continue }
            for (child, key) in children.reversed() where visited.insert(child).inserted {
                links.append((link, key))
                pending.append((child, links.count - 1, depth + 1))
            }
        }
        return found
    }

    /// Every tensor reachable from the root through dicts, lists and tuples, by dotted path (for `inspect --all`).
    public func allTensors() -> [(path: String, tensor: StoredTensor)] {
        if pickle == nil { return flatTensors.map { (path: $0.0, tensor: $0.1) } }
        return tensorDicts().flatMap { dict in dict.tensors.map { (path: dict.path.isEmpty ? $0.0 : dict.path + "." + $0.0, tensor: $0.1) } }
    }
}

// MARK: - Binding

/// One parameter a network declares: its official name and shape.
public struct ParameterDeclaration: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public init(_ name: String, _ shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

/// How declared names are looked up among stored ones.
public enum KeyMapping: Sendable, Equatable {
    /// Stored names equal declared names.
    case identical
    /// LDM's EMA copy: `prefix` + the declared name with its dots removed
    /// (`model_ema.diffusion_modelinput_blocks00weight` for `diffusion_model.input_blocks.0.0.weight`).
    case dotsStripped(prefix: String)
    /// `prefix` + the declared name (RDDM's `ResidualDiffusion` holds its network under `model.`).
    case prefixed(String)

    public func storedName(_ declared: String) -> String {
        switch self {
        case .identical: return declared
        case .prefixed(let prefix): return prefix + declared
        case .dotsStripped(let prefix): return prefix + declared.replacingOccurrences(of: ".", with: "")
        }
    }
}

extension StateDict {
    /// Converts the declared parameters to Float32 tensors, checking every name and shape first.
    ///
    /// All problems are collected into one `CheckpointError.bindingFailed`: declared names missing from
    /// the file, stored tensors the network does not declare (unless `ignoreUnexpected` says to skip
    /// them, e.g. BatchNorm's `num_batches_tracked` or the other half of an LDM file), shape mismatches.
    /// A declared shape matches a stored one with the same element count when they differ only by
    /// size-1 dimensions (PyTorch's `[C]` vs `[1, C, 1, 1]`).
    public func bind(_ declarations: [ParameterDeclaration], mapping: KeyMapping = .identical,
                     ignoreUnexpected: (String) -> Bool = { $0.hasSuffix("num_batches_tracked") }) throws -> [String: Tensor] {
        var problems: [BindingProblem] = []
        var used = Set<String>()
        var claimedBy: [String: String] = [:]
        var plan: [(declared: ParameterDeclaration, stored: StoredTensor)] = []
        for declaration in declarations {
            let storedName = mapping.storedName(declaration.name)
            if let other = claimedBy[storedName] {
                problems.append(.ambiguous(key: declaration.name, storedKey: storedName))
                problems.append(.ambiguous(key: other, storedKey: storedName))
                continue
            }
            claimedBy[storedName] = declaration.name
            guard let stored = self[storedName] else {
                problems.append(.missing(key: declaration.name, expected: declaration.shape))
                continue
            }
            used.insert(storedName)
            guard Self.shapesMatch(declaration.shape, stored.shape) else {
                problems.append(.shapeMismatch(key: declaration.name, expected: declaration.shape, found: stored.shape))
                continue
            }
            plan.append((declaration, stored))
        }
        for (name, tensor) in tensors where !used.contains(name) && !ignoreUnexpected(name) {
            problems.append(.unexpected(key: name, found: tensor.shape))
        }
        guard problems.isEmpty else { throw CheckpointError.bindingFailed(problems: problems) }
        var bound: [String: Tensor] = [:]
        for (declaration, stored) in plan {
            bound[declaration.name] = try stored.floatTensor(shape: declaration.shape.isEmpty ? [1] : declaration.shape)
            stored.file.releasePages(stored.storageRange)
        }
        return bound
    }

    /// True when shapes are equal or differ only by size-1 dimensions with the same element count.
    public static func shapesMatch(_ declared: [Int], _ stored: [Int]) -> Bool {
        if declared == stored { return true }
        return declared.filter { $0 != 1 } == stored.filter { $0 != 1 } && declared.reduce(1, *) == stored.reduce(1, *)
    }
}
