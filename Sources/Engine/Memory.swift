import Foundation
import CEngineSupport

/// Process-wide memory settings.
public enum MemoryTuning {
    /// Fixes glibc's mmap threshold at `bytes` (default 256 KiB). glibc raises the threshold after large
    /// blocks are freed, after which the many window-sized tensors of a tiled run come from the heap and
    /// fragment it (measured: +13 MiB at a 4096² output). Call once at start-up; no-op off glibc.
    @discardableResult
    public static func fixMmapThreshold(_ bytes: Int = 256 * 1024) -> Bool { dr_fix_mmap_threshold(bytes) == 1 }
}

/// Freed tensor buffers between 256 KiB and 64 MiB, kept for the next tensor of the same byte size. A diffusion
/// run allocates the same activations at every step (and a tiled run at every window); each of those, above
/// glibc's fixed mmap threshold, was a fresh mapping whose pages the kernel faulted in and zeroed, and unmapped
/// again when freed: a third of the CPU time of a tiled run went to the kernel (USDR 256² output: 11.9 of
/// 38.4 CPU-seconds). Reused buffers skip both.
///
/// The pool holds at most `capacity` bytes (8 MiB: one network evaluation of a 64² window cycles through
/// buffers of a few sizes of 1–2 MiB each), at most a quarter of the most pooled-size bytes ever live at once,
/// and only while the bytes held plus those live stay within that most: it frees held buffers when a new
/// allocation would break that. Measured on a USDR run (256² output, 49 windows of 64², 10 steps, Zen 4):
/// 19.0 s without the pool, 13.3 s with 8 MiB (+4 MiB peak RSS, +5 %), 12.3 s with 32 MiB (+13 MiB), 11.9 s
/// unbounded (+28 MiB). Batched windows (`--window-batch`) have larger buffers: raise it with the variable.
public enum BufferPool {
    static let minimumBytes = 256 * 1024, maximumBytes = 64 << 20
    /// Bytes the pool may hold at most: 8 MiB, or `DR_BUFFER_POOL_MIB` (0 switches the pool off).
    public static let capacity: Int = {
        guard let text = getenv("DR_BUFFER_POOL_MIB"), let mib = Int(String(cString: text)), mib >= 0 else { return 8 << 20 }
        return mib << 20
    }()
    private static let lock = NSLock()
    nonisolated(unsafe) private static var buffers: [Int: [UnsafeMutableRawPointer]] = [:]
    nonisolated(unsafe) private static var held = 0, live = 0, peak = 0

    /// A 64-byte-aligned buffer of `bytes`: a held one of that size, else a new one (nil: out of memory).
    static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer? {
        if bytes >= minimumBytes, bytes <= maximumBytes {
            lock.lock()
            if let buffer = buffers[bytes]?.popLast() {
                held -= bytes
                live += bytes
                lock.unlock()
                return buffer
            }
            live += bytes
            peak = max(peak, live)
            var evicted: [UnsafeMutableRawPointer] = []
            while held + live > peak, let size = buffers.first(where: { !$0.value.isEmpty })?.key, let buffer = buffers[size]?.popLast() {
                held -= size
                evicted.append(buffer)
            }
            lock.unlock()
            for buffer in evicted { free(buffer) }
        }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            if bytes >= minimumBytes, bytes <= maximumBytes { lock.lock(); live -= bytes; lock.unlock() }
            return nil
        }
        return raw
    }

    /// Frees `buffer` of `bytes`, or keeps it for the next tensor of that size.
    static func release(_ buffer: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= minimumBytes, bytes <= maximumBytes {
            lock.lock()
            live -= bytes
            if held + bytes <= min(capacity, peak / 4), held + bytes + live <= peak {
                buffers[bytes, default: []].append(buffer)
                held += bytes
                lock.unlock()
                return
            }
            lock.unlock()
        }
        free(buffer)
    }

    /// Bytes held now, and the most pooled-size bytes ever live at once (for tests and reports).
    public static var heldBytes: Int { lock.lock(); defer { lock.unlock() }; return held }
    public static var peakLiveBytes: Int { lock.lock(); defer { lock.unlock() }; return peak }

    /// Frees every buffer held.
    public static func drain() {
        lock.lock()
        defer { lock.unlock() }
        for list in buffers.values { for buffer in list { free(buffer) } }
        buffers = [:]
        held = 0
    }
}
