import Foundation

/// Everything that can go wrong reading, binding or writing a checkpoint. Each case prints as one line
/// naming the offending file, entry, key or shape; `bindingFailed` adds one line per problem after its
/// one-line summary.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened, mapped or written.
    case io(path: String, reason: String)
    /// The file is none of the formats this reader knows.
    case unknownFormat(path: String)
    /// The zip container is malformed or hostile (bad offsets, traversal names, compressed storages, …).
    case invalidZip(reason: String)
    /// The pickle stream is malformed, too large, too deep, or uses an unsupported opcode.
    case invalidPickle(offset: Int, reason: String)
    /// The pickle names a global that can run code or touch the system; the whole file is refused.
    case forbiddenGlobal(module: String, name: String)
    /// A tensor record is inconsistent (storage too small, bad strides, unknown dtype, …).
    case invalidTensor(key: String, reason: String)
    /// The safetensors header is malformed or inconsistent with the file.
    case invalidSafetensors(reason: String)
    /// No state dict could be found (or the requested one does not exist).
    case stateDictNotFound(reason: String)
    /// The checkpoint does not fit the network's declared parameters.
    case bindingFailed(problems: [BindingProblem])

    /// One line per problem, whatever a hostile file put in its names: control characters are escaped
    /// and each line is cut at 400 characters.
    public var description: String {
        if case .bindingFailed(let problems) = self {  // a summary line, then one line per problem
            let summary = rawDescription.prefix { $0 != "\n" }
            return ([String(summary)] + problems.map { "  " + CheckpointError.printable($0.description) }).joined(separator: "\n")
        }
        return CheckpointError.printable(rawDescription)
    }

    /// `text` with control characters escaped and at most 400 characters.
    public static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if out.count >= 400 { out += "…"; break }
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) {
                out += String(format: "\\u{%02x}", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    var rawDescription: String {
        switch self {
        case .io(let path, let reason): return "\(reason) (\(path))"
        case .unknownFormat(let path):
            return "not a PyTorch checkpoint (zip or legacy pickle) or a safetensors file (\(path))"
        case .invalidZip(let reason): return "invalid zip checkpoint: \(reason)"
        case .invalidPickle(let offset, let reason): return "invalid pickle at byte \(offset): \(reason)"
        case .forbiddenGlobal(let module, let name):
            return "refusing the file: its pickle names \(module).\(name), which could run code or touch the system; nothing was executed"
        case .invalidTensor(let key, let reason): return "invalid tensor record: \(reason) (\(key))"
        case .invalidSafetensors(let reason): return "invalid safetensors file: \(reason)"
        case .stateDictNotFound(let reason): return "no state dict found: \(reason)"
        case .bindingFailed(let problems):
            let missing = problems.filter { if case .missing = $0 { return true } else { return false } }.count
            let unexpected = problems.filter { if case .unexpected = $0 { return true } else { return false } }.count
            let mismatched = problems.count - missing - unexpected
            var lines = ["checkpoint does not fit the network: \(missing) missing, \(unexpected) unexpected, \(mismatched) shape mismatches"]
            lines += problems.map { "  \($0)" }
            return lines.joined(separator: "\n")
        }
    }
}

/// One reason a checkpoint does not fit a network's declared parameters.
public enum BindingProblem: CustomStringConvertible, Equatable, Sendable {
    /// The network declares `key` but the checkpoint has no tensor for it.
    case missing(key: String, expected: [Int])
    /// The checkpoint has a tensor the network does not declare.
    case unexpected(key: String, found: [Int])
    /// Both have `key`, with different shapes.
    case shapeMismatch(key: String, expected: [Int], found: [Int])
    /// Two declared names map to one stored key (LDM's dot-stripped EMA names), so neither can be bound.
    case ambiguous(key: String, storedKey: String)

    public var description: String {
        switch self {
        case .missing(let key, let expected): return "missing: \(key) (expected \(expected))"
        case .unexpected(let key, let found): return "unexpected: \(key) (found \(found))"
        case .shapeMismatch(let key, let expected, let found): return "shape mismatch: \(key) (expected \(expected), found \(found))"
        case .ambiguous(let key, let storedKey): return "ambiguous: \(key) (stored as \(storedKey), which another declared name also maps to)"
        }
    }
}
