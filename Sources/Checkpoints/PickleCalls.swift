/// The only "calls" the reader performs: Swift interpretations of allow-listed globals. Every other
/// callable yields an inert `PickleInstance` recording what would have been called.
extension MachineState {
    mutating func applyCall(_ callable: PickleValue, _ arguments: [PickleValue]) throws -> PickleValue {
        guard case .global(_, _, let kind)? = heap.object(callable) else {
            return try allocate(.instance(PickleInstance(type: callable, arguments: arguments)), children: arguments)
        }
        switch kind {
        case .dictionary:
            let dict = try allocate(.dict(PickleDict()))
            // OrderedDict([(k, v), …]) or dict({…}); defaultdict(factory) has no items to copy.
            if let first = arguments.first, let pairs = heap.sequence(first) {
                for pair in pairs {
                    guard let kv = heap.sequence(pair), kv.count == 2 else { throw PickleFailure("dict items must be pairs") }
                    try setItems(kv, on: dict)
                }
            } else if let first = arguments.first, let source = heap.dict(first) {
                for i in 0..<source.count { try setItems([source.keys[i], source.values[i]], on: dict) }
            }
            return dict
        case .set:
            let items = arguments.first.flatMap { heap.sequence($0) } ?? []
            return try allocate(.set(PickleList(items)), children: items)
        case .tuple:
            let items = arguments.first.flatMap { heap.sequence($0) } ?? []
            return try allocate(.tuple(items), children: items)
        case .rebuildTensor:
            return try allocate(.tensor(try rebuildTensor(arguments)))
        case .rebuildParameter:
            guard let data = arguments.first, heap.tensor(data) != nil else { throw PickleFailure("_rebuild_parameter without a tensor") }
            return data
        case .rebuildFromType:
            // (func, type, args, state): apply func to args; func must itself be allow-listed.
            guard arguments.count >= 3, let inner = heap.sequence(arguments[2]) else { throw PickleFailure("_rebuild_from_type_v2 needs (func, type, args, state)") }
            guard case .global(_, _, let innerKind)? = heap.object(arguments[0]), innerKind == .rebuildTensor || innerKind == .rebuildParameter else {
                return try allocate(.instance(PickleInstance(type: callable, arguments: arguments)), children: arguments)
            }
            return try applyCall(arguments[0], inner)
        case .reconstructor:
            let type = arguments.first ?? callable
            return try allocate(.instance(PickleInstance(type: type, arguments: Array(arguments.dropFirst()))), children: arguments)
        case .storageType, .knownInert, .unknownInert:
            return try allocate(.instance(PickleInstance(type: callable, arguments: arguments)), children: arguments)
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    func rebuildTensor(_ arguments: [PickleValue]) throws -> TensorReference {
        guard arguments.count >= 4, case .storage(let storage)? = heap.object(arguments[0]) else {
            throw PickleFailure("_rebuild_tensor needs (storage, offset, size, stride, …)")
        }
        guard let offset = arguments[1].intValue, offset >= 0 else { throw PickleFailure("tensor storage offset must be a non-negative integer") }
        let shape = try integers(arguments[2], "size")
        let strides = try integers(arguments[3], "stride")
        guard shape.count == strides.count, shape.count <= 64 else { throw PickleFailure("tensor size and stride differ in length") }
        return TensorReference(storage: storage, layout: TensorLayout(shape: shape, strides: strides, storageOffset: offset))
    }

    func integers(_ value: PickleValue, _ what: String) throws -> [Int] {
        guard let items = heap.sequence(value) else { throw PickleFailure("tensor \(what) is not a tuple") }
        return try items.map {
            guard let v = $0.intValue, v >= 0 else { throw PickleFailure("tensor \(what) holds a negative or non-integer value") }
            return v
        }
    }
}

/// The persistent ids PyTorch writes: `('storage', <torch.XStorage>, key, location, numel[, view])`.
public enum TorchPersistentID {
    /// Decodes a torch storage id into a heap `.storage` object.
    public static func storage(_ id: PickleValue, _ heap: inout PickleHeap) throws -> PickleValue {
        guard let fields = heap.sequence(id), fields.count >= 5, fields[0].stringValue == "storage" else {
            throw PickleFailure("persistent id is not a torch storage")
        }
        guard case .global(let module, let name, .storageType(let type))? = heap.object(fields[1]) else {
            throw PickleFailure("storage type is not a torch storage class")
        }
        _ = module; _ = name
        let key: String
        switch fields[2] {
        case .string(let s): key = s
        case .int(let i): key = String(i)
        default: throw PickleFailure("storage key is not a string")
        }
        guard let count = fields[4].intValue, count >= 0 else { throw PickleFailure("storage element count must be non-negative") }
        var view: (offset: Int, count: Int)?
        if fields.count >= 6, let metadata = heap.sequence(fields[5]) {
            guard metadata.count == 3, let offset = metadata[1].intValue, let size = metadata[2].intValue, offset >= 0, size >= 0 else {
                throw PickleFailure("bad storage view metadata")
            }
            view = (offset, size)
        }
        heap.objects.append(.storage(StorageReference(key: key, elementType: type, elementCount: count, view: view)))
        heap.depths.append(1)
        return .reference(heap.objects.count - 1)
    }
}
