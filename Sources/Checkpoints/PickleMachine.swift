/// A pickle reader for protocols 0–5 that never executes anything.
///
/// Iterative (no recursion), with hard limits on the stack, the memo, marks and nesting depth, so hostile
/// input ends in `CheckpointError`, never in a crash. Globals resolve through `PickleGlobals`; the few
/// allow-listed callables are interpreted in Swift (`applyCall`), everything else becomes inert data.
public struct PickleMachine {
    /// The limits every load is held to.
    public struct Limits: Sendable {
        public var maximumStackDepth = 1 << 20
        public var maximumMemoEntries = 1 << 22
        public var maximumMarks = 1 << 16
        public var maximumNesting = 1000
        public var maximumObjects = 1 << 26
        public init() {}
    }

    /// What one `load` produced.
    public struct Result: Sendable {
        public let root: PickleValue
        public let heap: PickleHeap
        /// Classes outside the allow-list that became inert placeholders, `module.name`, sorted.
        public let unknownGlobals: [String]
        /// Offset just past the STOP opcode (the legacy format has several pickles in a row).
        public let endOffset: Int
    }

    let bytes: UnsafeRawBufferPointer
    let limits: Limits

    public init(_ bytes: UnsafeRawBufferPointer, limits: Limits = Limits()) {
        self.bytes = bytes
        self.limits = limits
    }

    /// Reads one pickle starting at `offset`.
    ///
    /// `persistentLoad` turns a BINPERSID id into a value (torch storages); it gets the heap to read the id.
    public func load(from offset: Int = 0,
                     persistentLoad: (PickleValue, inout PickleHeap) throws -> PickleValue = { _, _ in throw PickleFailure("persistent ids are not allowed here") }) throws -> Result {
        var state = MachineState(limits: limits)
        var cursor = ByteCursor(bytes, at: offset) { reason in .invalidPickle(offset: offset, reason: reason) }
        var opcodeOffset = offset
        do {
            while true {
                opcodeOffset = cursor.position
                let opcode = try cursor.uint8()
                if opcode == 0x2E {  // STOP
                    guard state.stack.count == 1, state.marks.isEmpty else { throw PickleFailure("STOP with \(state.stack.count) values on the stack") }
                    let unknown = state.unknownGlobals.sorted()
                    return Result(root: state.stack[0], heap: state.heap, unknownGlobals: unknown, endOffset: cursor.position)
                }
                try state.execute(opcode, &cursor, persistentLoad)
            }
        } catch let failure as PickleFailure {
            throw CheckpointError.invalidPickle(offset: opcodeOffset, reason: failure.reason)
        } catch CheckpointError.invalidPickle(_, let reason) {
            throw CheckpointError.invalidPickle(offset: opcodeOffset, reason: reason)
        }
    }
}

/// The machine's registers: stack, marks, memo, heap.
struct MachineState {
    let limits: PickleMachine.Limits
    var stack: [PickleValue] = []
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]
    var heap = PickleHeap()
    var unknownGlobals = Set<String>()

    init(limits: PickleMachine.Limits) { self.limits = limits }

    // MARK: Stack helpers

    mutating func push(_ value: PickleValue) throws {
        guard stack.count < limits.maximumStackDepth else { throw PickleFailure("stack deeper than \(limits.maximumStackDepth)") }
        stack.append(value)
    }

    mutating func pop() throws -> PickleValue {
        guard let value = stack.popLast() else { throw PickleFailure("stack underflow") }
        if let mark = marks.last, stack.count < mark { throw PickleFailure("pop below a mark") }
        return value
    }

    mutating func top() throws -> PickleValue {
        guard let value = stack.last else { throw PickleFailure("stack underflow") }
        return value
    }

    /// Pops everything above the last mark, and the mark.
    mutating func popToMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw PickleFailure("no mark on the stack") }
        guard mark <= stack.count else { throw PickleFailure("mark above the stack") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    func depth(of value: PickleValue) -> Int32 {
        if case .reference(let index) = value { return heap.depths[index] }
        return 0
    }

    /// Adds an object whose children are `children`, refusing nesting past the limit.
    mutating func allocate(_ object: PickleObject, children: [PickleValue] = []) throws -> PickleValue {
        guard heap.objects.count < limits.maximumObjects else { throw PickleFailure("more than \(limits.maximumObjects) objects") }
        let depth = (children.map { self.depth(of: $0) }.max() ?? 0) + 1
        guard depth <= limits.maximumNesting else { throw PickleFailure("nesting deeper than \(limits.maximumNesting) levels") }
        heap.objects.append(object)
        heap.depths.append(depth)
        return .reference(heap.objects.count - 1)
    }

    /// Records that `parent` now contains `children` (for the nesting limit).
    mutating func deepen(_ parent: Int, with children: [PickleValue]) throws {
        let depth = max(heap.depths[parent], (children.map { self.depth(of: $0) }.max() ?? 0) + 1)
        guard depth <= limits.maximumNesting else { throw PickleFailure("nesting deeper than \(limits.maximumNesting) levels") }
        heap.depths[parent] = depth
    }

    mutating func memoize(_ index: Int, _ value: PickleValue) throws {
        guard memo[index] != nil || memo.count < limits.maximumMemoEntries else { throw PickleFailure("memo larger than \(limits.maximumMemoEntries) entries") }
        memo[index] = value
    }

    func recall(_ index: Int) throws -> PickleValue {
        guard let value = memo[index] else { throw PickleFailure("memo has no entry \(index)") }
        return value
    }

    // MARK: Containers

    /// Appends `items` to the list (or set, or inert object) that `target` refers to.
    mutating func append(_ items: [PickleValue], to target: PickleValue) throws {
        guard case .reference(let index) = target else { throw PickleFailure("APPEND to a non-container") }
        try deepen(index, with: items)
        // Mutated in place through the array's modify access, so a growing container is never copied.
        guard heap.objects[index].appendElements(items) else { throw PickleFailure("APPEND to a value that is not a list") }
    }

    /// Sets key/value pairs on the dict (or inert object) that `target` refers to.
    mutating func setItems(_ pairs: [PickleValue], on target: PickleValue) throws {
        guard pairs.count % 2 == 0 else { throw PickleFailure("SETITEMS with an odd number of values") }
        guard case .reference(let index) = target else { throw PickleFailure("SETITEM on a non-container") }
        try deepen(index, with: pairs)
        guard try heap.objects[index].insertItems(pairs) else { throw PickleFailure("SETITEM on a value that is not a dict") }
    }

    /// BUILD: state for an inert object is recorded; for dicts, tensors and others it is ignored.
    mutating func build(_ target: PickleValue, state: PickleValue) throws {
        guard case .reference(let index) = target else { throw PickleFailure("BUILD on a non-object") }
        guard case .instance = heap.objects[index] else { return }
        try deepen(index, with: [state])
        heap.objects[index].setState(state)
    }

    mutating func global(module: String, name: String) throws -> PickleValue {
        let kind = try PickleGlobals.resolve(module: module, name: name)
        if kind == .unknownInert { unknownGlobals.insert(module + "." + name) }
        return try allocate(.global(module: module, name: name, kind: kind))
    }
}

/// Mutation of heap containers: their payloads are classes, so they grow in place (never copied).
extension PickleObject {
    func appendElements(_ items: [PickleValue]) -> Bool {
        switch self {
        case .list(let list), .set(let list): list.items.append(contentsOf: items)
        case .instance(let instance): instance.elements.append(contentsOf: items)
        default: return false
        }
        return true
    }

    func insertItems(_ pairs: [PickleValue]) throws -> Bool {
        let target: PickleDict
        switch self {
        case .dict(let dict): target = dict
        case .instance(let instance): target = instance.items
        default: return false
        }
        for pair in stride(from: 0, to: pairs.count, by: 2) { try target.insert(pairs[pair], pairs[pair + 1]) }
        return true
    }

    func setState(_ state: PickleValue) {
        if case .instance(let instance) = self { instance.state = state }
    }
}
