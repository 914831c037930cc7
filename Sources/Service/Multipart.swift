import Foundation

/// A minimal multipart/form-data reader (RFC 7578) for the upload form: named parts with their bytes.
/// File names sent by a client are kept only as labels; they never become paths.
struct MultipartForm {
    struct Part {
        let name: String
        let filename: String?
        let contentType: String?
        let bytes: [UInt8]
    }

    let parts: [Part]

    subscript(name: String) -> Part? { parts.first { $0.name == name } }

    /// The boundary of a `multipart/form-data; boundary=…` content type.
    static func boundary(contentType: String) -> String? {
        guard contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                let value = pair[1].hasPrefix("\"") && pair[1].hasSuffix("\"") && pair[1].count >= 2 ? String(pair[1].dropFirst().dropLast()) : pair[1]
                return (1...70).contains(value.count) ? value : nil
            }
        }
        return nil
    }

    init(bytes body: [UInt8], boundary: String) throws {
        let delimiter = Array("--\(boundary)".utf8)
        var positions: [Int] = []
        var i = 0
        while let found = Self.find(delimiter, in: body, from: i) {
            positions.append(found)
            i = found + delimiter.count
        }
        guard positions.count >= 2 else { throw ServiceError(.badRequest, "the form has no parts (multipart boundary \(boundary) not found)") }
        var parts: [Part] = []
        for (start, end) in zip(positions, positions.dropFirst()) {
            var from = start + delimiter.count
            // "\r\n" after the delimiter; the part ends with "\r\n" before the next delimiter.
            guard from + 2 <= end, body[from] == 13, body[from + 1] == 10 else { continue }
            from += 2
            let stop = end >= 2 && body[end - 2] == 13 && body[end - 1] == 10 ? end - 2 : end
            guard let headerEnd = Self.find([13, 10, 13, 10], in: body, from: from), headerEnd <= stop else {
                throw ServiceError(.badRequest, "a form part has no header")
            }
            let header = String(decoding: body[from..<headerEnd], as: UTF8.self)
            var name: String?, filename: String?, type: String?
            for line in header.components(separatedBy: "\r\n") {
                let lower = line.lowercased()
                if lower.hasPrefix("content-disposition:") {
                    name = Self.parameter("name", in: line)
                    filename = Self.parameter("filename", in: line)
                } else if lower.hasPrefix("content-type:") {
                    type = line.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces)
                }
            }
            guard let name else { throw ServiceError(.badRequest, "a form part has no name") }
            parts.append(Part(name: name, filename: filename, contentType: type, bytes: Array(body[(headerEnd + 4)..<stop])))
        }
        self.parts = parts
    }

    private static func parameter(_ key: String, in line: String) -> String? {
        for piece in line.split(separator: ";").dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, pair[0].lowercased() == key else { continue }
            return pair[1].hasPrefix("\"") && pair[1].hasSuffix("\"") && pair[1].count >= 2 ? String(pair[1].dropFirst().dropLast()) : pair[1]
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        let first = needle[0]
        var i = start
        while i <= haystack.count - needle.count {
            if haystack[i] == first {
                var j = 1
                while j < needle.count, haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}
