/// Opcode dispatch for `PickleMachine` (see Python's `pickletools` for the opcode list).
extension MachineState {
    mutating func execute(_ opcode: UInt8, _ cursor: inout ByteCursor,
                          _ persistentLoad: (PickleValue, inout PickleHeap) throws -> PickleValue) throws {
        switch opcode {
        case 0x80:  // PROTO
            let version = try cursor.uint8()
            guard version <= 5 else { throw PickleFailure("unsupported protocol \(version)") }
        case 0x95: try cursor.skip(8)  // FRAME: the bytes are contiguous already
        case 0x28:  // MARK
            guard marks.count < limits.maximumMarks else { throw PickleFailure("more than \(limits.maximumMarks) marks") }
            marks.append(stack.count)
        case 0x30: _ = try pop()  // POP
        case 0x31: _ = try popToMark()  // POP_MARK
        case 0x32: try push(try top())  // DUP

        // MARK: Scalars
        case 0x4E: try push(.none)
        case 0x88: try push(.bool(true))
        case 0x89: try push(.bool(false))
        case 0x4A: try push(.int(Int(try cursor.littleEndian(Int32.self))))  // BININT
        case 0x4B: try push(.int(Int(try cursor.uint8())))  // BININT1
        case 0x4D: try push(.int(Int(try cursor.littleEndian(UInt16.self))))  // BININT2
        case 0x8A: try push(try Self.long(try cursor.take(Int(try cursor.uint8()))))  // LONG1
        case 0x8B:  // LONG4
            let length = Int(try cursor.littleEndian(Int32.self))
            guard length >= 0 else { throw PickleFailure("negative LONG4 length") }
            try push(try Self.long(try cursor.take(length)))
        case 0x47: try push(.float(Double(bitPattern: UInt64(bigEndian: try cursor.take(8).loadUnaligned(as: UInt64.self)))))  // BINFLOAT
        case 0x49, 0x4C:  // INT, LONG (protocol 0 text)
            let text = try Self.line(&cursor)
            let digits = text.hasSuffix("L") ? String(text.dropLast()) : text
            if opcode == 0x49, digits == "00" || digits == "01" { try push(.bool(digits == "01")); break }
            guard let value = Int(digits) else { throw PickleFailure("bad integer literal") }
            try push(.int(value))
        case 0x46:  // FLOAT (text)
            guard let value = Double(try Self.line(&cursor)) else { throw PickleFailure("bad float literal") }
            try push(.float(value))

        // MARK: Strings and bytes
        case 0x58: try push(.string(try Self.utf8(try cursor.take(try Self.length32(&cursor)))))  // BINUNICODE
        case 0x8C: try push(.string(try Self.utf8(try cursor.take(Int(try cursor.uint8())))))  // SHORT_BINUNICODE
        case 0x8D: try push(.string(try Self.utf8(try cursor.take(try Self.length64(&cursor)))))  // BINUNICODE8
        case 0x42: try push(.bytes(Array(try cursor.take(try Self.length32(&cursor)))))  // BINBYTES
        case 0x43: try push(.bytes(Array(try cursor.take(Int(try cursor.uint8())))))  // SHORT_BINBYTES
        case 0x8E, 0x96: try push(.bytes(Array(try cursor.take(try Self.length64(&cursor)))))  // BINBYTES8, BYTEARRAY8
        case 0x54: try push(.string(String(decoding: try cursor.take(try Self.length32(&cursor)), as: UTF8.self)))  // BINSTRING
        case 0x55: try push(.string(String(decoding: try cursor.take(Int(try cursor.uint8())), as: UTF8.self)))  // SHORT_BINSTRING

        // MARK: Containers
        case 0x7D: try push(try allocate(.dict(PickleDict())))  // EMPTY_DICT
        case 0x5D: try push(try allocate(.list(PickleList([]))))  // EMPTY_LIST
        case 0x29: try push(try allocate(.tuple([])))  // EMPTY_TUPLE
        case 0x8F: try push(try allocate(.set(PickleList([]))))  // EMPTY_SET
        case 0x85, 0x86, 0x87:  // TUPLE1..3
            let n = Int(opcode - 0x84)
            guard stack.count >= n, (marks.last ?? 0) <= stack.count - n else { throw PickleFailure("stack underflow") }
            let items = Array(stack.suffix(n))
            stack.removeLast(n)
            try push(try allocate(.tuple(items), children: items))
        case 0x74:  // TUPLE
            let items = try popToMark()
            try push(try allocate(.tuple(items), children: items))
        case 0x6C:  // LIST
            let items = try popToMark()
            try push(try allocate(.list(PickleList(items)), children: items))
        case 0x91:  // FROZENSET
            let items = try popToMark()
            try push(try allocate(.set(PickleList(items)), children: items))
        case 0x64:  // DICT
            let items = try popToMark()
            let dict = try allocate(.dict(PickleDict()))
            try setItems(items, on: dict)
            try push(dict)
        case 0x61:  // APPEND
            let item = try pop()
            try append([item], to: try top())
        case 0x65, 0x90:  // APPENDS, ADDITEMS
            let items = try popToMark()
            try append(items, to: try top())
        case 0x73:  // SETITEM
            let value = try pop(), key = try pop()
            try setItems([key, value], on: try top())
        case 0x75:  // SETITEMS
            let items = try popToMark()
            try setItems(items, on: try top())

        // MARK: Memo
        case 0x71: try memoize(Int(try cursor.uint8()), try top())  // BINPUT
        case 0x72: try memoize(Int(try cursor.littleEndian(UInt32.self)), try top())  // LONG_BINPUT
        case 0x94: try memoize(memo.count, try top())  // MEMOIZE
        case 0x68: try push(try recall(Int(try cursor.uint8())))  // BINGET
        case 0x6A: try push(try recall(Int(try cursor.littleEndian(UInt32.self))))  // LONG_BINGET
        case 0x70:  // PUT (text)
            guard let index = Int(try Self.line(&cursor)), index >= 0 else { throw PickleFailure("bad PUT index") }
            try memoize(index, try top())
        case 0x67:  // GET (text)
            guard let index = Int(try Self.line(&cursor)) else { throw PickleFailure("bad GET index") }
            try push(try recall(index))

        // MARK: Globals and calls (never executed)
        case 0x63:  // GLOBAL
            let module = try Self.line(&cursor), name = try Self.line(&cursor)
            try push(try global(module: module, name: name))
        case 0x93:  // STACK_GLOBAL
            let name = try pop(), module = try pop()
            guard let moduleName = module.stringValue, let globalName = name.stringValue else { throw PickleFailure("STACK_GLOBAL needs two strings") }
            try push(try global(module: moduleName, name: globalName))
        case 0x52:  // REDUCE
            let arguments = try pop(), callable = try pop()
            guard let items = heap.sequence(arguments) else { throw PickleFailure("REDUCE arguments are not a tuple") }
            try push(try applyCall(callable, items))
        case 0x81:  // NEWOBJ
            let arguments = try pop(), type = try pop()
            guard let items = heap.sequence(arguments) else { throw PickleFailure("NEWOBJ arguments are not a tuple") }
            try push(try applyCall(type, items))
        case 0x92:  // NEWOBJ_EX
            _ = try pop()
            let arguments = try pop(), type = try pop()
            guard let items = heap.sequence(arguments) else { throw PickleFailure("NEWOBJ_EX arguments are not a tuple") }
            try push(try applyCall(type, items))
        case 0x69:  // INST
            let module = try Self.line(&cursor), name = try Self.line(&cursor)
            let type = try global(module: module, name: name)
            let items = try popToMark()
            try push(try applyCall(type, items))
        case 0x6F:  // OBJ
            var items = try popToMark()
            guard !items.isEmpty else { throw PickleFailure("OBJ without a class") }
            let type = items.removeFirst()
            try push(try applyCall(type, items))
        case 0x62:  // BUILD
            let state = try pop()
            try build(try top(), state: state)
        case 0x51:  // BINPERSID
            let id = try pop()
            try push(try persistentLoad(id, &heap))
        default:
            throw PickleFailure("unsupported opcode 0x\(String(opcode, radix: 16))")
        }
    }

    // MARK: Operand decoding

    static func length32(_ cursor: inout ByteCursor) throws -> Int { Int(try cursor.littleEndian(UInt32.self)) }

    static func length64(_ cursor: inout ByteCursor) throws -> Int {
        let length = try cursor.littleEndian(UInt64.self)
        guard length <= UInt64(cursor.remaining) else { throw PickleFailure("declares \(length) bytes, only \(cursor.remaining) left") }
        return Int(length)
    }

    static func utf8(_ raw: UnsafeRawBufferPointer) throws -> String {
        guard let text = String(validating: raw, as: UTF8.self) else { throw PickleFailure("string is not valid UTF-8") }
        return text
    }

    /// A newline-terminated ASCII operand of at most 256 bytes (protocol 0 text).
    static func line(_ cursor: inout ByteCursor) throws -> String {
        var bytes: [UInt8] = []
        while true {
            let byte = try cursor.uint8()
            if byte == 0x0A { break }
            guard bytes.count < 256 else { throw PickleFailure("text operand longer than 256 bytes") }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A little-endian two's-complement integer; wider than 64 bits stays opaque.
    static func long(_ raw: UnsafeRawBufferPointer) throws -> PickleValue {
        guard raw.count <= 8 else { return .bigInt(byteCount: raw.count) }
        guard !raw.isEmpty else { return .int(0) }
        var value: UInt64 = 0
        for (shift, byte) in raw.enumerated() { value |= UInt64(byte) << (8 * UInt64(shift)) }
        if raw[raw.count - 1] & 0x80 != 0, raw.count < 8 { value |= ~UInt64(0) << (8 * UInt64(raw.count)) }
        return .int(Int(bitPattern: UInt(value)))
    }
}
