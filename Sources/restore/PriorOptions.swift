import ArgumentParser
import Networks
import Restoration

/// The diffusion prior flags every method shares (`--model`, `--preset`, `--model-config`, `--class`).
struct PriorOptions: ParsableArguments {
    @Option(help: "A diffusion prior: an official checkpoint (.pt/.ckpt) or a .safetensors (default: the bundled Models/adm64-prior.safetensors, 64² natural-photo patches).")
    var model: String?

    @Option(help: "Force the architecture of --model: \(NetworkPreset.all.map(\.name).joined(separator: ", ")) (default: detected).")
    var preset: String?

    @Option(help: "A JSON file with the architecture of a custom prior: guided-diffusion UNetModel arguments (image_size, model_channels, …) or the DDPM model section (ch, ch_mult, …, with resolution).")
    var modelConfig: String?

    @Option(name: .customLong("class"), help: "Class id for a class-conditional prior (ImageNet: 0–999).")
    var classID: Int?

    /// The model a job runs on (`standIn`: a zero-cost ε-network of that native size, for measurements).
    func reference(standIn: Int? = nil) -> ModelReference {
        ModelReference(path: model, preset: preset, config: modelConfig, standInNativeSize: standIn)
    }
}
