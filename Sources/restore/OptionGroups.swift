import ArgumentParser

/// Windows for images larger than the prior (DDNM's mask-shift windows, DreamClean's tiled ε).
struct TilingOptions: ParsableArguments {
    @Option(help: "Window side in pixels for images larger than the prior (default and maximum: the prior's native size; for ddnm, setting it forces tiling).")
    var window: Int?

    @Option(help: "Overlap between neighbouring windows in pixels (default: half the window).")
    var overlap: Int?

    @Flag(help: "Read mask images the official DDNM way: white (255) = keep.")
    var maskKeepWhite = false
}

/// The papers' protocol: a clean input degraded by the method's operator, restored and measured against itself.
struct SimulateOptions: ParsableArguments {
    @Flag(help: "The input is a clean image: degrade it (ddnm: --degradation and --sigma-y; resshift: bicubic ×4, as DDNM's bicubic:4), restore, and report PSNR/SSIM against it.")
    var simulate = false

    @Option(help: "Also write the observation y as an image (with --simulate: the degraded input the restoration saw).")
    var saveObservation: String?
}

/// Sampling flags every method shares; their defaults are each method's official ones.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling steps (ddnm: T_sampling of the 1000 training steps, default 100; dreamclean: DDIM steps from τ back to 0, default 30 blind, 20 with --degradation; resshift: the steps the network was trained with, 4 or 15, default from the model).")
    var steps: Int?

    @Option(help: "Random seed (default: the method's official one, 1234; resshift 12345). Same seed, same threads, same build → identical output.")
    var seed: UInt64?
}
