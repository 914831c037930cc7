/// A value produced by the pickle reader. Scalars are held inline; containers and objects live in a
/// `PickleHeap` and are referred to by index, so nesting and cycles never recurse through Swift's
/// reference counting (a million nested tuples free as one array).
public enum PickleValue: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits (kept only as its byte count; never used for weights).
    case bigInt(byteCount: Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// A container or object in the heap.
    case reference(Int)

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    /// The integer, if this is one (booleans count, as in Python).
    public var intValue: Int? {
        switch self {
        case .int(let v): return v
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
}

/// A dict as the pickle built it: insertion-ordered, string keys indexed. A class, so that SETITEMS grows
/// it in place (a hostile file may add millions of items); read-only once the load has finished.
public final class PickleDict: @unchecked Sendable {
    public init() {}
    public private(set) var keys: [PickleValue] = []
    public private(set) var values: [PickleValue] = []
    private var stringKeyIndex: [String: Int] = [:]

    /// The number of entries.
    public var count: Int { keys.count }

    /// The value stored under a string key.
    public subscript(key: String) -> PickleValue? { stringKeyIndex[key].map { values[$0] } }

    /// Adds an entry; a repeated string key throws (Python would silently keep the last one, so two
    /// readers could disagree on which tensor a key names; no real writer produces it).
    func insert(_ key: PickleValue, _ value: PickleValue) throws {
        if case .string(let name) = key {
            guard stringKeyIndex[name] == nil else { throw PickleFailure("duplicate dict key \(name.debugDescription)") }
            stringKeyIndex[name] = keys.count
        }
        keys.append(key)
        values.append(value)
    }
}

/// A reference to a storage from a persistent id: the container (zip or legacy) supplies its bytes.
public struct StorageReference: Sendable, Equatable {
    /// The storage's key (`archive/data/<key>` in a zip, or the legacy storage key).
    public let key: String
    public let elementType: ElementType
    /// Elements in the storage as declared by the persistent id.
    public let elementCount: Int
    /// Legacy storage views: the element offset into the root storage and the view's element count.
    public let view: (offset: Int, count: Int)?

    public static func == (a: StorageReference, b: StorageReference) -> Bool {
        a.key == b.key && a.elementType == b.elementType && a.elementCount == b.elementCount
            && a.view?.offset == b.view?.offset && a.view?.count == b.view?.count
    }
}

/// A tensor found in the pickle: which storage it views and how.
public struct TensorReference: Sendable, Equatable {
    public let storage: StorageReference
    public let layout: TensorLayout
}

/// A container or object in the heap. Nothing here is ever called: globals are names, and objects are
/// the recorded (callable, arguments, state) of a call that never happened.
/// A list or set's items, in a class so that APPEND grows them in place.
public final class PickleList: @unchecked Sendable {
    public internal(set) var items: [PickleValue]
    init(_ items: [PickleValue]) { self.items = items }
}

public enum PickleObject: Sendable {
    case list(PickleList)
    case tuple([PickleValue])
    case dict(PickleDict)
    case set(PickleList)
    /// A resolved global: its name and what the reader took it to be.
    case global(module: String, name: String, kind: PickleGlobalKind)
    /// An inert stand-in for an object of a class outside the allow-list (or a harmless one such as
    /// `torch.device`): its class, constructor arguments, state and any items added to it.
    case instance(PickleInstance)
    case storage(StorageReference)
    case tensor(TensorReference)
}

/// An object that was never constructed: what the pickle would have built it from. A class, grown in
/// place by APPEND / SETITEM / BUILD.
public final class PickleInstance: @unchecked Sendable {
    /// The class or callable (a `.global` reference, usually).
    public var type: PickleValue
    public var arguments: [PickleValue]
    public var state: PickleValue?
    public var items = PickleDict()
    public var elements: [PickleValue] = []

    init(type: PickleValue, arguments: [PickleValue]) {
        self.type = type
        self.arguments = arguments
    }
}

/// All containers and objects one pickle built, indexed by `PickleValue.reference`.
public struct PickleHeap: Sendable {
    public internal(set) var objects: [PickleObject] = []
    /// Nesting depth of each object when it was last modified (used to refuse deep nesting).
    var depths: [Int32] = []

    /// The object a value refers to, if it is a reference.
    public func object(_ value: PickleValue) -> PickleObject? {
        if case .reference(let index) = value { return objects[index] }
        return nil
    }

    /// The dict a value refers to (dict-like allow-listed classes are dicts too).
    public func dict(_ value: PickleValue) -> PickleDict? {
        if case .dict(let d)? = object(value) { return d }
        return nil
    }

    /// The items of a list or tuple.
    public func sequence(_ value: PickleValue) -> [PickleValue]? {
        switch object(value) {
        case .list(let list)?: return list.items
        case .tuple(let items)?: return items
        default: return nil
        }
    }

    /// The tensor a value refers to.
    public func tensor(_ value: PickleValue) -> TensorReference? {
        if case .tensor(let t)? = object(value) { return t }
        return nil
    }
}

/// An internal error the machine converts to `CheckpointError.invalidPickle` with the opcode's offset.
public struct PickleFailure: Error {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}
