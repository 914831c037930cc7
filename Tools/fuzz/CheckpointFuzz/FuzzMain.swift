import Checkpoints
import Foundation

// libFuzzer entry point for the pickle reader, the zip/legacy containers and the safetensors header
// parser. Built with `make fuzz` (-sanitize=fuzzer,address and -DFUZZING, which leaves libFuzzer's own
// `main` in charge); a plain build turns this file into a replayer: `checkpoint-fuzz FILE...`.
@_cdecl("LLVMFuzzerTestOneInput")
public func checkpointFuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    CheckpointFuzzing.consume(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if FUZZING
// SwiftPM renames an executable's `main` to `<target>_main` and points `main` at it, so libFuzzer's own
// main is not used: this hands control to libFuzzer's driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("checkpoint_fuzz_main")
public func checkpointFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, checkpointFuzzTestOneInput)
}
#else
@main
struct CheckpointFuzzReplay {
    static func main() {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            _ = data.withUnsafeBytes { CheckpointFuzzing.consume($0) }
            count += 1
        }
        print("replayed \(count) inputs without a crash")
    }
}
#endif
