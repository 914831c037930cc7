import Checkpoints
import XCTest
@testable import Networks

/// Family recognition from key names and shapes, on the official-format fixtures of each family we run.
final class ModelFamilyTests: XCTestCase {
    private func family(_ name: String) throws -> ModelFamily? {
        let folder = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return ModelFamily.recognise(try Checkpoint(path: folder.appendingPathComponent(name).path).stateDict())
    }

    func testRecognisesEveryFamilyWeRun() throws {
        XCTAssertEqual(try family("adm_a.pt")?.name, "adm-unet")
        XCTAssertEqual(try family("ddpm_a.pt")?.name, "ddpm-unet")
        XCTAssertEqual(try family("resshift/swin_a.pt")?.name, "swin-unet")
        XCTAssertEqual(try family("resshift/vq_a.pt")?.name, "vq-autoencoder")
        XCTAssertTrue(try XCTUnwrap(family("adm_b.pt")).description.contains("model_channels"), "details read from the shapes")
        XCTAssertNil(try family("adm_a.io.safetensors"), "golden tensors are no model")
    }
}
