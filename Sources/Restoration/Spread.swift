import Checkpoints
import Engine
import Foundation
import ImageIO
import Methods
import Operators
import Tiling

/// One stage of a USDR run spread over processes or machines (README, "Many images, big images"). Windows of
/// one wave depend only on the finished windows of earlier waves, and each draws its own noise stream
/// (`WindowNoise`), so workers that restore the windows of a wave in any split and order, reading only their
/// neighbours' files, give the one-process image bit for bit. Every stage runs the same `restore ddnm` job
/// (same input, options and seed); the folder holds the plan and the windows' results.
public struct SpreadStage: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Writes plan.json: the windows, their waves and the stages.
        case plan
        /// Runs stage `stage` of the plan (the HiR pyramid, or a wave of windows), the windows k of the wave
        /// with k mod `parts` = `part`.
        case stage
        /// Reads every window's file and writes the image, as the one-process run would.
        case stitch
    }

    public var kind: Kind
    public var folder: String
    public var stage = 0
    public var part = 0, parts = 1

    public init(kind: Kind, folder: String, stage: Int = 0, part: Int = 0, parts: Int = 1) {
        (self.kind, self.folder, self.stage, self.part, self.parts) = (kind, folder, stage, part, parts)
    }
}

/// A spread stage other than the stitch finished: it wrote its files and there is no image to write.
public struct SpreadStageFinished: Error, CustomStringConvertible {
    public let description: String
}

/// The plan every worker reads (plan.json).
struct SpreadPlan: Codable {
    var format = "diffusionrestore-usdr-plan"
    /// SHA-256 of the job that made it (options without the stage, seed, y): workers with another job refuse.
    var fingerprint: String
    var height: Int, width: Int, channels: Int
    var window: Int, stride: Int
    var rects: [[Int]]
    var waves: [[Int]]
    /// "hierarchy" (the HiR pyramid, when it applies) then "wave 0", "wave 1", …
    var stages: [String]
    var hir: String
    var hirFactor: Int?
}

enum USDRSpread {
    static func fingerprint(_ options: DDNMOptions, seed: UInt64, y: Tensor) throws -> String {
        var neutral = options
        neutral.spread = nil
        neutral.windowBatch = 1
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var bytes = Array(try encoder.encode(neutral)) + Array("\n\(seed)\n\(y.shape)\n".utf8)
        bytes += Array(UnsafeRawBufferPointer(start: y.data, count: y.count * 4))
        return SHA256.hex(of: bytes)
    }

    static func planPath(_ folder: String) -> String { (folder as NSString).appendingPathComponent("plan.json") }
    static func hierarchyPath(_ folder: String) -> String { (folder as NSString).appendingPathComponent("hierarchy.safetensors") }
    static func windowPath(_ folder: String, _ index: Int) -> String {
        (folder as NSString).appendingPathComponent("windows/w\(index).safetensors")
    }

    static func readPlan(_ folder: String, fingerprint: String) throws -> SpreadPlan {
        guard let data = FileManager.default.contents(atPath: planPath(folder)) else {
            throw RestorationError("no plan in \(folder): run the plan step first (restore ddnm … --spread \(folder) --plan)")
        }
        let plan: SpreadPlan
        do { plan = try JSONDecoder().decode(SpreadPlan.self, from: data) } catch { throw RestorationError("\(planPath(folder)) is not a plan (\(error))") }
        guard plan.fingerprint == fingerprint else {
            throw RestorationError("\(planPath(folder)) was made for another input, options or seed: every stage must run the plan's job")
        }
        return plan
    }

    static func readTensor(_ path: String, _ name: String, shape: [Int]) throws -> Tensor {
        guard FileManager.default.fileExists(atPath: path) else { throw RestorationError("missing \(path): an earlier stage has not finished") }
        guard let stored = try Checkpoint(path: path).stateDict()[name], stored.shape == shape else {
            throw RestorationError("\(path) does not hold a \(shape) tensor \"\(name)\"")
        }
        return try stored.floatTensor(shape: shape)
    }

    /// Runs `stage` of a tiled DDNM restoration; returns the image for the stitch, else throws `SpreadStageFinished`.
    static func run(_ stage: SpreadStage, usdr: USDRRestoration, options: DDNMOptions, seed: UInt64, observation y: Tensor,
                    operator a: any DegradationOperator, imageShape shape: [Int], predictNoise: Denoiser, label: String,
                    context: RestorationContext) throws -> USDRRestoration.Outcome {
        let fingerprint = try fingerprint(options, seed: seed, y: y)
        let noise = WindowNoise(seed: seed)
        let evaluations = usdr.sampler.timesteps.networkEvaluations
        let levels = try usdr.levels(observation: y, operator: a, imageShape: shape)
        let msr = try usdr.fullSize(operator: a, imageShape: shape, globalFactor: levels.last?.factor, label: label)
        let plan = msr.plan
        let hierarchyStages = levels.isEmpty ? 0 : 1
        switch stage.kind {
        case .plan:
            let waves = plan.waves
            let spread = SpreadPlan(fingerprint: fingerprint, height: shape[1], width: shape[2], channels: shape[3], window: plan.windowWidth,
                                    stride: plan.stride, rects: plan.rects.map { [$0.y, $0.x, $0.height, $0.width] }, waves: waves,
                                    stages: (levels.isEmpty ? [] : ["hierarchy"]) + waves.indices.map { "wave \($0)" },
                                    hir: levels.isEmpty ? "none" : levels.map { "÷\($0.factor)" }.joined(separator: " → "), hirFactor: levels.last?.factor)
            try FileManager.default.createDirectory(atPath: (stage.folder as NSString).appendingPathComponent("windows"), withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try ImageWriter.writeFile(Array(try encoder.encode(spread)) + [10], to: planPath(stage.folder), overwrite: true)
            throw SpreadStageFinished(description: "\(planPath(stage.folder)): \(plan.rects.count) windows in \(waves.count) waves (widest \(waves.map(\.count).max() ?? 0)), \(spread.stages.count) stages\(levels.isEmpty ? "" : " (stage 0: the HiR pass \(spread.hir))")")
        case .stage:
            let spread = try readPlan(stage.folder, fingerprint: fingerprint)
            guard (0..<spread.stages.count).contains(stage.stage) else {
                throw RestorationError("the plan has stages 0…\(spread.stages.count - 1), not \(stage.stage)")
            }
            guard stage.parts >= 1, (0..<stage.parts).contains(stage.part) else { throw RestorationError("--part takes i/N with 0 ≤ i < N") }
            if stage.stage < hierarchyStages {
                guard stage.part == 0 else { throw SpreadStageFinished(description: "stage 0 (the HiR pass) runs in part 0 only") }
                let path = hierarchyPath(stage.folder)
                if FileManager.default.fileExists(atPath: path) { throw SpreadStageFinished(description: "\(path) exists: the HiR pass is done") }
                let hierarchy = try usdr.hierarchy(observation: y, operator: a, imageShape: shape, predictNoise: predictNoise, noise: noise, label: label,
                                                   stage: { context.emit(.stage(label: $0, total: $1)) },
                                                   step: { context.emit(.step(done: $0, total: $1, note: $2)) })
                guard let global = hierarchy.global else { throw RestorationError("the HiR pass gave no result") }
                try SafetensorsWriter.write([("global", global.result)], to: path,
                                            metadata: ["factor": "\(global.factor)", "evaluations": "\(hierarchy.levelEvaluations)"], overwrite: true)
                throw SpreadStageFinished(description: "\(path): the HiR pass (\(hierarchy.description)), \(hierarchy.levelEvaluations) evaluations")
            }
            let wave = spread.waves[stage.stage - hierarchyStages]
            let global = try spread.hirFactor.map { factor in
                (factor: factor, result: try readTensor(hierarchyPath(stage.folder), "global", shape: [1, shape[1] / factor, shape[2] / factor, shape[3]]))
            }
            let mine = wave.enumerated().filter { $0.offset % stage.parts == stage.part }.map(\.element)
                .filter { !FileManager.default.fileExists(atPath: windowPath(stage.folder, $0)) }
            let local = try usdr.windowable(a, shape, label)
            context.emit(.stage(label: "\(label) (\(spread.stages[stage.stage]), \(mine.count) of its \(wave.count) windows)", total: evaluations * mine.count))
            var done = 0
            for start in stride(from: 0, to: mine.count, by: max(1, options.windowBatch)) {
                let chunk = Array(mine[start..<min(start + max(1, options.windowBatch), mine.count)])
                let results = try msr.restoreWindows(chunk, observation: y, operator: local, imageShape: shape, predictNoise: predictNoise,
                                                     noise: noise, global: global,
                                                     finished: { rect in try finishedNeighbours(of: chunk, rect: rect, plan: plan, folder: stage.folder, channels: shape[3]) },
                                                     progress: { context.emit(.step(done: done + $0, total: evaluations * mine.count, note: nil)) })
                for (index, window) in zip(chunk, results) {
                    try SafetensorsWriter.write([("x", window)], to: windowPath(stage.folder, index), overwrite: true)
                }
                done += evaluations * chunk.count
            }
            throw SpreadStageFinished(description: "\(spread.stages[stage.stage]): \(mine.count) window\(mine.count == 1 ? "" : "s") restored into \((stage.folder as NSString).appendingPathComponent("windows"))")
        case .stitch:
            let spread = try readPlan(stage.folder, fingerprint: fingerprint)
            let canvas = try Tensor(shape: shape, repeating: 0)
            for (index, rect) in plan.rects.enumerated() {
                try canvas.paste(try readTensor(windowPath(stage.folder, index), "x", shape: [1, rect.height, rect.width, shape[3]]), at: rect)
            }
            let local = try usdr.windowable(a, shape, label)
            let levelEvaluations = levels.isEmpty ? 0 : Int(try Checkpoint(path: hierarchyPath(stage.folder)).metadata["evaluations"] ?? "") ?? 0
            return USDRRestoration.Outcome(image: canvas, windows: plan.rects.count, levelEvaluations: levelEvaluations,
                                           hir: spread.hir == "none" ? (usdr.hir ? "not applicable" : "off") : spread.hir, seam: try msr.seamBlend(unit: MaskShiftRestoration.blockUnit(local, globalFactor: spread.hirFactor)))
        }
    }

    /// The image over `rect` as the finished windows left it: the results of the window's predecessors, pasted in
    /// raster order (the one-process canvas there), read from their files.
    static func finishedNeighbours(of chunk: [Int], rect: PixelRect, plan: WindowPlan, folder: String, channels: Int) throws -> Tensor {
        guard let index = chunk.first(where: { plan.rects[$0] == rect }) else { throw RestorationError("no window at \(rect)") }
        let out = try Tensor(shape: [1, rect.height, rect.width, channels], repeating: 0)
        for earlier in plan.predecessors(of: index) {
            let other = plan.rects[earlier]
            let result = try readTensor(windowPath(folder, earlier), "x", shape: [1, other.height, other.width, channels])
            let top = max(other.y, rect.y), bottom = min(other.y + other.height, rect.y + rect.height)
            let left = max(other.x, rect.x), right = min(other.x + other.width, rect.x + rect.width)
            guard top < bottom, left < right else { continue }
            let part = try result.crop(PixelRect(y: top - other.y, x: left - other.x, height: bottom - top, width: right - left))
            try out.paste(part, at: PixelRect(y: top - rect.y, x: left - rect.x, height: bottom - top, width: right - left))
        }
        return out
    }
}
