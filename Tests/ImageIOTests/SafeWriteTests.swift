import Foundation
import XCTest
@testable import ImageIO

/// The writer never leaves partial files, never overwrites without permission, never writes onto an input.
final class SafeWriteTests: XCTestCase {
    private let image = syntheticImage(width: 8, height: 6, channels: 3, maximum: 255)

    func testExistingOutputIsNotOverwrittenWithoutOverwrite() throws {
        let folder = try makeTemporaryFolder(self)
        let path = folder + "/out.png"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
        assertThrows(.outputExists(path: path), mentioning: [path, "--overwrite"]) {
            try ImageWriter.write(self.image, to: path)
        }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "keep me")
        XCTAssertEqual(try folderContents(folder), ["out.png"], "no temporary file left")
    }

    func testExistingOutputIsReplacedWithOverwrite() throws {
        let folder = try makeTemporaryFolder(self)
        let path = folder + "/out.png"
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        try ImageWriter.write(image, to: path, overwrite: true)
        XCTAssertEqual(integerSamples(try ImageReader.read(path: path), bits: 8), integerSamples(image, bits: 8))
        XCTAssertEqual(try folderContents(folder), ["out.png"])
    }

    func testFailureBeforeCommitLeavesNoPartialFile() throws {
        let folder = try makeTemporaryFolder(self)
        let path = folder + "/out.png"
        let injected = ImageIOError.writeFailed(path: path, reason: "disk full (injected)")
        for overwrite in [false, true] {
            var sawCompleteTemporaryFile = false
            assertThrows(injected) {
                try ImageWriter.write(self.image, to: path, format: nil, text: [:], overwrite: overwrite,
                                      protecting: []) { () throws(ImageIOError) in
                    let names = (try? folderContents(folder)) ?? []
                    // Linux: an unnamed O_TMPFILE file, invisible until the commit; elsewhere (or on file systems
                    // without O_TMPFILE) a named `.out.png.*.partial` file.
                    sawCompleteTemporaryFile = names.isEmpty || (names.count == 1 && names[0].hasPrefix(".out.png."))
                    throw injected
                }
            }
            XCTAssertTrue(sawCompleteTemporaryFile, "the data went to a temporary (on Linux: unnamed) file first")
            XCTAssertEqual(try folderContents(folder), [], "temporary file removed, no output")
        }
        // A failed overwrite leaves the previous file intact.
        try Data("previous".utf8).write(to: URL(fileURLWithPath: path))
        assertThrows(injected) {
            try ImageWriter.write(self.image, to: path, format: nil, text: [:], overwrite: true,
                                  protecting: []) { () throws(ImageIOError) in throw injected }
        }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "previous")
        XCTAssertEqual(try folderContents(folder), ["out.png"])
    }

    func testEncodingErrorsLeaveNoFile() throws {
        let folder = try makeTemporaryFolder(self)
        let path = folder + "/out.png"
        assertThrowsError(naming: path, mentioning: ["8 or 16"], {
            if case .invalidEncoding = $0 { return true } else { return false }
        }) { try ImageWriter.write(self.image, to: path, format: .png(bits: 12)) }
        assertThrowsError(naming: path, mentioning: ["keyword"], {
            if case .invalidEncoding = $0 { return true } else { return false }
        }) { try ImageWriter.write(self.image, to: path, text: [" bad key": "x"]) }
        assertThrowsError(naming: folder + "/out.jpg", mentioning: ["1-100"], {
            if case .invalidEncoding = $0 { return true } else { return false }
        }) { try ImageWriter.write(self.image, to: folder + "/out.jpg", format: .jpeg(quality: 0)) }
        XCTAssertEqual(try folderContents(folder), [])
    }

    func testUnknownExtensionWithoutFormatIsRefused() throws {
        let path = try makeTemporaryFolder(self) + "/out.tif"
        assertThrows(.unknownOutputFormat(path: path), mentioning: [".png"]) {
            try ImageWriter.write(self.image, to: path)
        }
    }

    func testWritingOntoAnInputIsRefusedEvenWithOverwrite() throws {
        let folder = try makeTemporaryFolder(self)
        let input = folder + "/input.png"
        try ImageWriter.write(image, to: input)
        let original = try Data(contentsOf: URL(fileURLWithPath: input))
        // The same path, a differently spelled path, a symlink and a hard link to the input.
        let symlink = folder + "/link.png"
        let hardLink = folder + "/hard.png"
        try FileManager.default.createSymbolicLink(atPath: symlink, withDestinationPath: input)
        try FileManager.default.linkItem(atPath: input, toPath: hardLink)
        for output in [input, folder + "/./input.png", symlink, hardLink] {
            assertThrows(.outputIsInput(path: output, input: input), mentioning: [output, "input"]) {
                try ImageWriter.write(self.image, to: output, overwrite: true, protecting: [input])
            }
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)), original)
        XCTAssertEqual(try folderContents(folder), ["hard.png", "input.png", "link.png"])
    }

    func testMissingOutputFolderIsReported() throws {
        let folder = try makeTemporaryFolder(self) + "/missing"
        let path = folder + "/out.png"
        assertThrowsError(naming: path, mentioning: [folder], {
            if case .cannotWriteFolder = $0 { return true } else { return false }
        }) { try ImageWriter.write(self.image, to: path) }
    }

    func testFileInPlaceOfFolderIsReported() throws {
        let folder = try makeTemporaryFolder(self)
        try Data().write(to: URL(fileURLWithPath: folder + "/plain"))
        let path = folder + "/plain/out.png"
        assertThrowsError(naming: path, mentioning: ["not a folder"], {
            if case .cannotWriteFolder = $0 { return true } else { return false }
        }) { try ImageWriter.write(self.image, to: path) }
    }

    func testReadOnlyFolderIsReported() throws {
        try XCTSkipIf(geteuid() == 0, "root can write into read-only folders")
        let folder = try makeTemporaryFolder(self) + "/locked"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o555])
        addTeardownBlock { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder) }
        assertThrowsError(naming: folder + "/out.png", mentioning: ["Permission denied"], {
            if case .cannotWriteFolder = $0 { return true } else { return false }
        }) { try ImageWriter.write(self.image, to: folder + "/out.png") }
    }

    func testRelativeOutputPathIsWrittenInTheCurrentFolder() throws {
        let folder = try makeTemporaryFolder(self)
        // A path relative to the current folder, made by climbing to the root from it (changing the current
        // folder instead would touch process-wide state other tests share).
        let depth = FileManager.default.currentDirectoryPath.split(separator: "/").count
        let relative = String(repeating: "../", count: depth) + folder.dropFirst() + "/relative.png"
        try ImageWriter.write(image, to: relative)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/relative.png"))
        assertThrows(.outputIsInput(path: relative, input: folder + "/relative.png")) {
            try ImageWriter.write(self.image, to: relative, overwrite: true, protecting: [folder + "/relative.png"])
        }
        XCTAssertEqual(try folderContents(folder), ["relative.png"])
    }
}
