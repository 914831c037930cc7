#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif

/// Writes a file so that readers see either the old state or the complete new file, never a partial
/// one: the bytes go to a temporary file in the target's folder (same file system), are fsync'ed, and
/// the temporary file is then renamed (or, when overwriting is not allowed, hard-linked) into place.
/// On any failure the temporary file is removed.
enum AtomicFileWriter {
    /// Called with the target path once the temporary file is complete and synced, just before it gets its
    /// name, on every write (crash tests pause the process here and kill it: `ImageWriter.pauseBeforeCommit`).
    nonisolated(unsafe) static var everyCommit: ((String) -> Void)?

    /// Writes `bytes` to `path`. When `overwrite` is false an existing file is never replaced, even if
    /// it appears between the caller's checks and the commit. `beforeCommit` runs after the temporary
    /// file is complete and synced, just before it is moved into place (tests use it to inject failures).
    static func write(_ bytes: [UInt8], to path: String, overwrite: Bool,
                      beforeCommit: () throws(ImageIOError) -> Void = {}) throws(ImageIOError) {
        try write(to: path, overwrite: overwrite, beforeCommit: beforeCommit) { (descriptor: Int32) throws(ImageIOError) in
            try writeAll(bytes, to: descriptor, path: path)
        }
    }

    /// The same with the content produced by `content`, which writes to the open descriptor (streamed
    /// encoders); it may run twice when the unnamed-file path is unavailable and the named one is used.
    static func write(to path: String, overwrite: Bool, beforeCommit: () throws(ImageIOError) -> Void = {},
                      content: (Int32) throws(ImageIOError) -> Void) throws(ImageIOError) {
        let folder = FileSystem.parentFolder(of: path)
        #if os(Linux)
        if try writeAnonymously(content, to: path, folder: folder, overwrite: overwrite, beforeCommit: beforeCommit) { return }
        #endif
        let (descriptor, temporaryPath) = try createTemporaryFile(in: folder, for: path)
        var committed = false
        var isOpen = true
        defer {
            if isOpen { close(descriptor) }
            if !committed { unlink(temporaryPath) }
        }
        try content(descriptor)
        guard fsync(descriptor) == 0 else { throw .writeFailed(path: path, reason: FileSystem.reason(errno)) }
        isOpen = false
        guard close(descriptor) == 0 else { throw .writeFailed(path: path, reason: FileSystem.reason(errno)) }
        everyCommit?(path)
        try beforeCommit()
        if overwrite {
            guard rename(temporaryPath, path) == 0 else {
                throw .writeFailed(path: path, reason: "rename failed: \(FileSystem.reason(errno))")
            }
        } else {
            try commitWithoutReplacing(temporaryPath, to: path)
        }
        committed = true
        syncFolder(folder)
    }

    #if os(Linux)
    /// Linux: the bytes go to an unnamed file (O_TMPFILE) in the target's folder, which gets a name only
    /// when complete — linkat(2) through /proc/self/fd — so a kill -9 at any moment leaves no stray file.
    /// Overwriting links it under a temporary name and renames that over the target (the only window
    /// in which a kill leaves a `.partial` file is between those two calls). Returns false when the file
    /// system has no O_TMPFILE (the caller then uses a named temporary file).
    private static func writeAnonymously(_ content: (Int32) throws(ImageIOError) -> Void, to path: String, folder: String, overwrite: Bool,
                                          beforeCommit: () throws(ImageIOError) -> Void) throws(ImageIOError) -> Bool {
        let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY  // __O_TMPFILE | O_DIRECTORY (include/uapi/asm-generic/fcntl.h)
        let descriptor = open(folder, oTmpfile | O_WRONLY | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else {
            let code = errno
            if code == EOPNOTSUPP || code == EISDIR || code == EINVAL || code == ENOENT && FileSystem.exists(folder) { return false }
            throw .cannotWriteFolder(path: path, folder: folder, reason: FileSystem.reason(code))
        }
        defer { close(descriptor) }
        try content(descriptor)
        guard fsync(descriptor) == 0 else { throw .writeFailed(path: path, reason: FileSystem.reason(errno)) }
        everyCommit?(path)
        try beforeCommit()
        let handle = "/proc/self/fd/\(descriptor)"
        let atFDCWD: Int32 = -100, atSymlinkFollow: Int32 = 0x400
        // Without /proc (or where linking is not allowed) the caller falls back to a named temporary file.
        func unavailable(_ code: Int32) -> Bool { [ENOENT, EPERM, EACCES, ENOTSUP, EOPNOTSUPP, EXDEV, EMLINK, ENOSYS].contains(code) }
        if !overwrite {
            guard linkat(atFDCWD, handle, atFDCWD, path, atSymlinkFollow) == 0 else {
                let code = errno
                if code == EEXIST { throw .outputExists(path: path) }
                if unavailable(code) { return false }
                throw .writeFailed(path: path, reason: "linkat failed: \(FileSystem.reason(code))")
            }
        } else {
            let base = folder == "/" ? "" : folder
            var named: String?
            for _ in 0..<16 {
                let candidate = "\(base)/.\(FileSystem.fileName(of: path)).\(String(UInt32.random(in: 0...UInt32.max), radix: 16)).partial"
                if linkat(atFDCWD, handle, atFDCWD, candidate, atSymlinkFollow) == 0 { named = candidate; break }
                let code = errno
                if unavailable(code) { return false }
                guard code == EEXIST else { throw .writeFailed(path: path, reason: "linkat failed: \(FileSystem.reason(code))") }
            }
            guard let named else { throw .cannotWriteFolder(path: path, folder: folder, reason: "cannot name the temporary file") }
            guard rename(named, path) == 0 else {
                let reason = FileSystem.reason(errno)
                unlink(named)
                throw .writeFailed(path: path, reason: "rename failed: \(reason)")
            }
        }
        syncFolder(folder)
        return true
    }
    #endif

    /// Opens a new, uniquely named temporary file next to `path` (mode 0666 minus the umask).
    private static func createTemporaryFile(in folder: String, for path: String) throws(ImageIOError)
        -> (Int32, String) {
        let base = folder == "/" ? "" : folder
        for _ in 0..<16 {
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            let temporaryPath = "\(base)/.\(FileSystem.fileName(of: path)).\(suffix).partial"
            let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if descriptor >= 0 { return (descriptor, temporaryPath) }
            let code = errno
            if code == EEXIST { continue }
            throw .cannotWriteFolder(path: path, folder: folder, reason: FileSystem.reason(code))
        }
        throw .cannotWriteFolder(path: path, folder: folder, reason: "cannot create a temporary file")
    }

    static func writeAll(_ bytes: [UInt8], to descriptor: Int32, path: String) throws(ImageIOError) {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                posixWrite(descriptor, buffer.baseAddress! + written, bytes.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, reason: FileSystem.reason(errno))
            }
            written += count
        }
    }

    /// Writes `count` bytes at `buffer` to `descriptor` (retrying short writes and EINTR); false on failure.
    static func writeAll(_ buffer: UnsafeRawPointer, count: Int, to descriptor: Int32) -> Bool {
        var written = 0
        while written < count {
            let n = posixWrite(descriptor, buffer + written, count - written)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            written += n
        }
        return true
    }

    /// Moves the temporary file into place only if nothing exists at `path`: link(2) fails with EEXIST
    /// instead of replacing. File systems without hard links fall back to a check and rename.
    private static func commitWithoutReplacing(_ temporaryPath: String, to path: String) throws(ImageIOError) {
        if link(temporaryPath, path) == 0 {
            unlink(temporaryPath)
            return
        }
        let code = errno
        if code == EEXIST { throw .outputExists(path: path) }
        guard code == EPERM || code == ENOTSUP || code == EOPNOTSUPP || code == EMLINK || code == ENOSYS else {
            throw .writeFailed(path: path, reason: "link failed: \(FileSystem.reason(code))")
        }
        if FileSystem.exists(path) { throw .outputExists(path: path) }
        guard rename(temporaryPath, path) == 0 else {
            throw .writeFailed(path: path, reason: "rename failed: \(FileSystem.reason(errno))")
        }
    }

    /// Best effort: makes the rename itself durable.
    private static func syncFolder(_ folder: String) {
        let descriptor = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }
}

/// `write(2)`, named apart from Swift methods called `write`.
@inline(__always)
private func posixWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, buffer, count)
    #elseif canImport(Darwin)
    return Darwin.write(descriptor, buffer, count)
    #else
    return Musl.write(descriptor, buffer, count)
    #endif
}
