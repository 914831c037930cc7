/// A committed fixture that is missing or does not load: a test failure, never a skip (a reader regression
/// must not turn golden tests into silent skips).
struct FixtureMissing: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
