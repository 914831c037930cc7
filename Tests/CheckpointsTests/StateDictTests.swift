import Foundation
import XCTest
@testable import Checkpoints

/// The state dict is found inside the official wrappers, and binding reports every problem at once.
final class StateDictTests: XCTestCase {
    private func open(_ name: String) throws -> Checkpoint { try Checkpoint(path: FixtureFiles.url("good/" + name).path) }

    func testLightningCheckpointUsesStateDictAndSkipsOptimizerState() throws {
        let checkpoint = try open("lightning.ckpt")
        let state = try checkpoint.stateDict()
        XCTAssertEqual(state.source, "state_dict")
        let prefixes = ["model.", "model_ema.", "first_stage_model."]
        XCTAssertTrue(state.names.allSatisfy { name in prefixes.contains { name.hasPrefix($0) } }, "\(state.names)")
        XCTAssertGreaterThan(checkpoint.tensorCount, state.tensors.count, "optimizer tensors stay outside")
    }

    func testBasicSRPrefersEMAWeights() throws {
        XCTAssertEqual(try open("wrapped_params_ema.pth").stateDict().source, "params_ema")
        XCTAssertEqual(try open("wrapped_params_ema.pth").stateDict(StateDictSelection(entry: "params")).source, "params")
    }

    func testDataParallelAndCompilePrefixesAreStripped() throws {
        XCTAssertTrue(try open("wrapped_module.pth").stateDict().names.allSatisfy { !$0.hasPrefix("module.") })
        XCTAssertTrue(try open("compiled.pt").stateDict().names.allSatisfy { !$0.hasPrefix("_orig_mod.") })
    }

    func testRDDMSelectsTheEMAModel() throws {
        let state = try open("rddm_ema.pt").stateDict()
        XCTAssertEqual(state.source, "ema (prefix ema_model.)")
        XCTAssertFalse(state.names.isEmpty)
        XCTAssertTrue(state.names.allSatisfy { !$0.hasPrefix("ema_model.") && !$0.hasPrefix("online_model.") })
    }

    func testMissingEntryIsAOneLineError() throws {
        XCTAssertThrowsError(try open("lightning.ckpt").stateDict(StateDictSelection(entry: "no_such_entry"))) { error in
            XCTAssertTrue("\(error)".contains("no_such_entry"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
    }

    func testLDMDotStrippedEMANamesBindFromDeclaredNames() throws {
        let state = try open("lightning.ckpt").stateDict()
        let emaNames = state.names.filter { $0.hasPrefix("model_ema.") && $0 != "model_ema.num_updates" && $0 != "model_ema.decay" }
        XCTAssertFalse(emaNames.isEmpty)
        // The declared (dotted) names are those of the plain copy `model.<name>`.
        let declarations = state.tensors.filter { $0.name.hasPrefix("model.") }.map { ParameterDeclaration(String($0.name.dropFirst("model.".count)), $0.tensor.shape) }
        let covered = declarations.filter { d in emaNames.contains("model_ema." + d.name.replacingOccurrences(of: ".", with: "")) }
        XCTAssertFalse(covered.isEmpty)
        let bound = try state.bind(covered, mapping: .dotsStripped(prefix: "model_ema."), ignoreUnexpected: { !$0.hasPrefix("model_ema.") || !emaNames.contains($0) })
        XCTAssertEqual(bound.count, covered.count)
        for declaration in covered {
            let stored = try XCTUnwrap(state["model_ema." + declaration.name.replacingOccurrences(of: ".", with: "")])
            XCTAssertEqual(bound[declaration.name]?.values, try stored.floatTensor().values)
        }
    }

    func testBindingReportsMissingUnexpectedAndMismatchedTogether() throws {
        let state = try open("wrapped_module.pth").stateDict()
        var declarations = state.tensors.map { ParameterDeclaration($0.name, $0.tensor.shape) }
        let dropped = declarations.removeLast()
        let first = declarations[0]
        declarations[0] = ParameterDeclaration(first.name, first.shape + [7])
        declarations.append(ParameterDeclaration("not.in.the.file", [3]))
        XCTAssertThrowsError(try state.bind(declarations)) { error in
            guard case CheckpointError.bindingFailed(let problems) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(problems.contains(.missing(key: "not.in.the.file", expected: [3])))
            XCTAssertTrue(problems.contains(.unexpected(key: dropped.name, found: dropped.shape)))
            XCTAssertTrue(problems.contains(.shapeMismatch(key: first.name, expected: first.shape + [7], found: first.shape)))
            XCTAssertEqual(problems.count, 3)
            XCTAssertTrue("\(error)".hasPrefix("checkpoint does not fit the network: 1 missing, 1 unexpected, 1 shape mismatches"))
        }
    }

    func testBindingAcceptsUnitDimensionsAndConvertsValues() throws {
        let state = try open("wrapped_module.pth").stateDict()
        let declarations = state.tensors.map { ParameterDeclaration($0.name, [1] + $0.tensor.shape) }
        let bound = try state.bind(declarations)
        for (name, tensor) in state.tensors {
            XCTAssertEqual(bound[name]?.shape, [1] + tensor.shape)
            XCTAssertEqual(bound[name]?.values, try tensor.floatTensor().values)
        }
    }
}
