import Foundation

/// Where the models shipped in the repository's `Models/` folder are found at run time.
enum BundledModels {
    /// The project's own prior, the default of `restore ddnm` (Models/adm64-prior.md).
    static let defaultPrior = "adm64-prior.safetensors"
    /// The project's own ×4 ResShift model, the default of `restore resshift` (Models/resshift-x4-own.md).
    static let defaultResShift = "resshift-x4-own.safetensors"

    /// The folders searched: $DIFFUSIONRESTORE_MODELS alone when set; otherwise, in order, `Models/` next to the executable's build
    /// folder (a source checkout: .build/<config>/restore → Models/), `../share/diffusionrestore/Models`
    /// (an install prefix), and `./Models`.
    static func searchFolders() -> [String] {
        if let env = ProcessInfo.processInfo.environment["DIFFUSIONRESTORE_MODELS"], !env.isEmpty { return [env] }  // chosen: only there
        var folders: [String] = []
        // The executable's real location (/proc/self/exe: argv[0] is a bare name when run through PATH).
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first ?? ""
        let executable = URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent()
        var folder = executable
        for _ in 0..<5 {
            folders.append(folder.appendingPathComponent("Models").path)
            folder = folder.deletingLastPathComponent()
        }
        folders.append(executable.deletingLastPathComponent().appendingPathComponent("share/diffusionrestore/Models").path)
        folders.append(FileManager.default.currentDirectoryPath + "/Models")
        return folders
    }

    /// The path of a bundled model, or a one-line failure naming where it was looked for.
    static func locate(_ name: String) throws -> String {
        for folder in searchFolders() {
            let path = (folder as NSString).appendingPathComponent(name)
            if FileManager.default.isReadableFile(atPath: path) { return path }
        }
        throw CommandFailure("no --model given and the bundled model \(name) was not found (looked in \(searchFolders().count == 1 ? searchFolders()[0] : "Models/ near the executable and ./Models")); pass --model FILE")
    }
}
