/// The one function the fuzzer (Tools/fuzz) and the corpus-replay test both drive: every reader this
/// module has, on arbitrary bytes. It must never crash, hang or allocate without bound; errors are fine.
public enum CheckpointFuzzing {
    /// Feeds `bytes` to the container detection and whole-file readers, the raw pickle machine, and the
    /// safetensors header parser; on success, binds every tensor to Float32 so each byte range is touched.
    /// Returns the number of tensors read (for the replay test's statistics).
    @discardableResult
    public static func consume(_ bytes: UnsafeRawBufferPointer) -> Int {
        let file = MappedBytes(copying: bytes)
        var tensorCount = 0
        if let checkpoint = try? Checkpoint(file: file, path: "fuzz-input") {
            for (_, tensor) in checkpoint.allTensors() where tensor.elementCount <= 1 << 20 {
                _ = try? tensor.floatTensor()
                tensorCount += 1
            }
            _ = try? checkpoint.stateDict()
        }
        // The pickle machine on its own (a data.pkl without a container), with a permissive persistent loader.
        _ = try? PickleMachine(bytes).load(persistentLoad: TorchPersistentID.storage)
        _ = try? Safetensors.parseHeader(bytes, fileSize: bytes.count)
        return tensorCount
    }
}
