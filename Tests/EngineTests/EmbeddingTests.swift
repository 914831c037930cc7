import XCTest
@testable import Engine

/// Timestep embeddings (ADM and DDPM, even and odd sizes) and the VQ nearest-codebook lookup.
final class EmbeddingTests: XCTestCase {
    /// torch.exp in float32 is not correctly rounded (1 ulp off for 2 of ADM's 64 frequencies), and
    /// sin(t · f) turns that into up to t · 6e-8 of difference: rows with t ≤ 37.5 are held to 1e-5, rows
    /// with t up to 999 to 6e-5 (the float32 reference's own noise there).
    private func assertCloseByTimestep(_ actual: Tensor, _ expected: Tensor, _ message: String,
                                       file: StaticString = #filePath, line: UInt = #line) throws {
        let width = expected.shape[1], strictRows = 3
        func rows(_ t: Tensor, _ range: Range<Int>) throws -> Tensor {
            try Tensor(shape: [range.count, width], values: Array(t.values[(range.lowerBound * width)..<(range.upperBound * width)]))
        }
        assertClose(try rows(actual, 0..<strictRows), try rows(expected, 0..<strictRows), relativeTolerance: 1e-5,
                    "\(message) t ≤ 37.5", file: file, line: line)
        assertClose(actual, expected, relativeTolerance: 6e-5, "\(message) all t", file: file, line: line)
    }

    func testADMTimestepEmbeddingMatchesGuidedDiffusion() throws {
        let f = try Fixture("embedding")
        let t = try f["timesteps"].values
        XCTAssertLessThanOrEqual(t[2], 37.5)
        try assertCloseByTimestep(try timestepEmbedding(t, dimension: 128, style: .adm), try f["adm128"], "128")
        let odd = try timestepEmbedding(t, dimension: 129, style: .adm)
        try assertCloseByTimestep(odd, try f["adm129"], "129")
        XCTAssertEqual(odd.data[128], 0)
    }

    func testDDPMTimestepEmbeddingMatchesPytorchDiffusion() throws {
        let f = try Fixture("embedding")
        let t = try f["timesteps"].values
        try assertCloseByTimestep(try timestepEmbedding(t, dimension: 128, style: .ddpm), try f["ddpm128"], "128")
        try assertCloseByTimestep(try timestepEmbedding(t, dimension: 33, style: .ddpm), try f["ddpm33"], "33")
    }

    func testEmbeddingOrderSwapsHalves() throws {
        let cosSin = try timestepEmbedding([17], dimension: 8, style: .adm)
        let sinCos = try timestepEmbedding([17], dimension: 8, style: .init(order: .sinCos, frequencies: .overHalf))
        XCTAssertEqual(Array(cosSin.values[0..<4]), Array(sinCos.values[4..<8]))
        XCTAssertEqual(cosSin.data[0], Float(cos(17.0)), accuracy: 1e-7)
    }

    func testNearestCodebookEntriesMatchTaming() throws {
        let f = try Fixture("vector_quantizer")
        let (quantized, indices) = try nearestCodebookEntries(try f["z"], codebook: try f["codebook"])
        XCTAssertEqual(indices.map(Float.init), try f["indices"].values)
        XCTAssertEqual(quantized.values, try f["quantized"].values)
    }

    func testNearestCodebookPicksFirstIndexOnTies() throws {
        let codebook = try Tensor(shape: [3, 2], values: [5, 5, 1, 0, 1, 0])
        let (_, indices) = try nearestCodebookEntries(try Tensor(shape: [1, 2], values: [1, 0.1]), codebook: codebook)
        XCTAssertEqual(indices, [1])
        XCTAssertThrowsError(try nearestCodebookEntries(try Tensor(shape: [1, 3]), codebook: codebook))
    }
}
