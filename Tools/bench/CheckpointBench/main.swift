import Checkpoints
import Engine
import Foundation

// Loads a checkpoint the way a network does (find the state dict, bind every tensor to Float32 at its
// declared shape) and prints one JSON line: seconds, tensors, parameters, peak RSS. Driven by
// Tools/bench/load_bench.py, which interleaves it with torch.load on the same file.
guard CommandLine.arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: checkpoint-bench FILE\n".utf8))
    exit(2)
}
let path = CommandLine.arguments[1]
do {
    let start = DispatchTime.now().uptimeNanoseconds
    let checkpoint = try Checkpoint(path: path)
    let state = try checkpoint.stateDict()
    let declarations = state.tensors.map { ParameterDeclaration($0.name, $0.tensor.shape) }
    let bound = try state.bind(declarations)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let parameters = bound.values.reduce(0) { $0 + $1.count }
    print(#"{"seconds": \#(seconds), "tensors": \#(bound.count), "parameters": \#(parameters), "peak_rss_bytes": \#(usage.ru_maxrss * 1024), "float32_bytes": \#(parameters * 4)}"#)
} catch {
    FileHandle.standardError.write(Data("checkpoint-bench: \(error)\n".utf8))
    exit(1)
}
