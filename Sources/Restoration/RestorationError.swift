/// A failure of the restoration library, in one line that names the file, key or shape at fault.
public struct RestorationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
}
