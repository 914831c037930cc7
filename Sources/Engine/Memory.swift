import CEngineSupport

/// Process-wide memory settings.
public enum MemoryTuning {
    /// Fixes glibc's mmap threshold at `bytes` (default 256 KiB). glibc raises the threshold after large
    /// blocks are freed, after which the many window-sized tensors of a tiled run come from the heap and
    /// fragment it (measured: +13 MiB at a 4096² output). Call once at start-up; no-op off glibc.
    @discardableResult
    public static func fixMmapThreshold(_ bytes: Int = 256 * 1024) -> Bool { dr_fix_mmap_threshold(bytes) == 1 }
}
