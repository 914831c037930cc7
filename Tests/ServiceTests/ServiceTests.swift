import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ImageIO
import Restoration
@testable import Service
import XCTest

/// The service in this process on a loopback port, driven over HTTP (URLSession) as a client would: every
/// route, each limit and bad input, cancellation, expiry, and that nothing a client sends becomes a path.
/// (HummingbirdTesting would pull AsyncHTTPClient and BoringSSL into the build; a real socket tests more.)
final class ServiceTests: XCTestCase {
    struct Reply { let status: Int; let headers: [String: String]; let body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var error: String { json["error"] as? String ?? "" }
    }

    private var server: Task<Void, Error>?
    private var port = 0
    private var configuration = ServiceConfiguration()

    private func start(_ change: (inout ServiceConfiguration) -> Void = { _ in }) throws {
        var c = ServiceConfiguration()
        c.port = 0
        c.logLevel = "critical"
        change(&c)
        configuration = c
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var bound = 0
        server = Task.detached { try await RestorationService.run(configuration: c, graceful: false) { port in bound = port; ready.signal() } }
        XCTAssertEqual(ready.wait(timeout: .now() + 30), .success, "the service starts")
        port = bound
    }

    override func tearDown() {
        server?.cancel()
        server = nil
    }

    private func request(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil, headers: [String: String] = [:]) -> Reply {
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        r.httpMethod = method
        r.httpBody = body
        r.timeoutInterval = 120
        if let contentType { r.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var reply = Reply(status: 0, headers: [:], body: Data())
        URLSession.shared.dataTask(with: r) { data, response, _ in
            let http = response as? HTTPURLResponse
            let fields = (http?.allHeaderFields as? [String: String] ?? [:]).reduce(into: [String: String]()) { $0[$1.key.lowercased()] = $1.value }
            reply = Reply(status: http?.statusCode ?? 0, headers: fields, body: data ?? Data())
            done.signal()
        }.resume()
        done.wait()
        return reply
    }

    private func png(_ width: Int, _ height: Int, channels: Int = 3) throws -> Data {
        var pixels: [Float] = []
        for y in 0..<height { for x in 0..<width { for c in 0..<channels { pixels.append(0.5 + 0.4 * sin(Float(x * 3 + y * 2 + c * 5) / 7)) } } }
        return Data(try ImageWriter.encode(Image(width: width, height: height, channels: channels, pixels: pixels), format: .png(bits: 8)))
    }

    /// A multipart form: (name, filename?, bytes).
    private func submit(_ parts: [(String, String?, Data)], headers: [String: String] = [:]) -> Reply {
        let boundary = "b\(UUID().uuidString)"
        var body = Data()
        for (name, filename, bytes) in parts {
            body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\(filename.map { "; filename=\"\($0)\"" } ?? "")\r\n\r\n".utf8))
            body.append(bytes)
            body.append(Data("\r\n".utf8))
        }
        body.append(Data("--\(boundary)--\r\n".utf8))
        return request("POST", "/jobs", body: body, contentType: "multipart/form-data; boundary=\(boundary)", headers: headers)
    }

    private func job(_ json: String) -> (String, String?, Data) { ("job", nil, Data(json.utf8)) }

    private func wait(_ id: String, until states: Set<String> = ["done", "failed", "cancelled"], seconds: Double = 120) -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            last = request("GET", "/jobs/\(id)").json
            if states.contains(last["state"] as? String ?? "") { return last }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("job \(id) did not reach \(states): \(last)")
        return last
    }

    func testPageHealthAndModels() throws {
        try start()
        let page = request("GET", "/")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(String(decoding: page.body, as: UTF8.self).contains("<script src=\"/app.js\""))
        let csp = page.headers["content-security-policy"] ?? ""
        XCTAssertTrue(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"), csp)
        XCTAssertFalse(String(decoding: page.body, as: UTF8.self).contains("http"), "nothing loaded from elsewhere")
        XCTAssertEqual(request("GET", "/app.js").status, 200)
        XCTAssertEqual(request("GET", "/health").json["status"] as? String, "ok")
        let models = try XCTUnwrap(request("GET", "/models").json["models"] as? [[String: String]])
        XCTAssertTrue(models.contains { $0["name"] == "adm64-prior" && $0["sha256"]?.count == 64 }, "\(models)")
        XCTAssertTrue(models.contains { $0["family"] == "resshift-swin" })
        XCTAssertTrue(models.contains { $0["family"] == "diffir-own" }, "\(models)")
    }

    func testAJobRunsWithEventsAndItsResultCarriesTheReport() throws {
        try start()
        let reply = submit([("image", "../../tmp/cat.png", try png(12, 10)), job(#"{"task": "upscale", "scale": 4, "seed": 5}"#)])
        XCTAssertEqual(reply.status, 201, reply.error)
        let id = try XCTUnwrap(reply.json["id"] as? String)
        XCTAssertEqual(reply.headers["location"], "/jobs/\(id)")
        let events = String(decoding: request("GET", "/jobs/\(id)/events").body, as: UTF8.self)
        XCTAssertTrue(events.contains("event: end"), events)
        let status = wait(id)
        XCTAssertEqual(status["state"] as? String, "done", "\(status)")
        let report = try XCTUnwrap((status["report"] as? String).flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        XCTAssertEqual(report["method"] as? String, "diffir")
        XCTAssertEqual(report["seed"] as? Int, 5)
        XCTAssertEqual(report["input"] as? String, "cat.png", "the client's name is a label only")
        XCTAssertEqual(report["output"] as? String, "/jobs/\(id)/result")
        let result = request("GET", "/jobs/\(id)/result")
        XCTAssertEqual(result.status, 200)
        XCTAssertEqual(result.headers["content-type"], "image/png")
        let image = try ImageReader.decode(Array(result.body), name: "result")
        XCTAssertEqual([image.width, image.height], [48, 40])
        XCTAssertEqual(image.text[reportChunkKeyword], status["report"] as? String)
        // Every file the server holds has a name it chose.
        let names = try FileManager.default.contentsOfDirectory(atPath: configuration.workFolder)
        XCTAssertFalse(names.isEmpty)
        for name in names { XCTAssertNotNil(name.range(of: #"^(image|mask|kernel|result)-[0-9a-f]{32}\.(png|jpg|webp)$"#, options: .regularExpression), name) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/cat.png"))
    }

    func testMethodJobsDecodeTheirOptionsAndUseTheUploadedMask() throws {
        try start()
        var mask = [Float](repeating: 0, count: 16 * 16)
        for i in 40..<80 { mask[i] = 1 }
        let maskPNG = Data(try ImageWriter.encode(Image(width: 16, height: 16, channels: 1, pixels: mask), format: .png(bits: 8)))
        for spec in [#"{"method":"dreamclean","seed":3,"options":{"steps":2,"inversionSteps":2,"degradation":"mask:mask"}}"#,
                     #"{"method":"ddnm","seed":3,"options":{"degradation":"mask:mask","steps":2}}"#,
                     #"{"method":"diffir","seed":3,"options":{"tile":0}}"#] {
            let reply = submit([("image", "a.png", try png(16, 16)), ("mask", "m.png", maskPNG), job(spec)])
            XCTAssertEqual(reply.status, 201, "\(spec): \(reply.error)")
            let status = wait(try XCTUnwrap(reply.json["id"] as? String))
            XCTAssertEqual(status["state"] as? String, "done", "\(spec): \(status)")
            let report = (status["report"] as? String) ?? ""
            XCTAssertTrue(report.contains("\"seed\":3") && !report.contains(configuration.workFolder), "no server path in the report: \(report)")
        }
    }

    func testBadRequestsGetTheRightStatusAndTheServiceKeepsServing() throws {
        try start { $0.maxUploadBytes = 64 << 10; $0.maxPixels = 1_000_000 }
        let image = try png(16, 16)
        XCTAssertEqual(submit([("image", "big.png", Data(count: 100 << 10)), job(#"{"task":"upscale"}"#)]).status, 413)
        // A PNG whose header says 60000×60000: refused from the header, before decoding.
        var huge = Array(try png(8, 8))
        huge.replaceSubrange(16..<24, with: [0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60])
        let crc = Self.crc32(Array(huge[12..<29]))
        huge.replaceSubrange(29..<33, with: [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)])
        let tooLarge = submit([("image", "huge.png", Data(huge)), job(#"{"task":"upscale"}"#)])
        XCTAssertEqual(tooLarge.status, 422, tooLarge.error)
        XCTAssertTrue(tooLarge.error.contains("60000"), tooLarge.error)
        XCTAssertEqual(submit([("image", "x.png", Data("hello, not an image".utf8)), job(#"{"task":"upscale"}"#)]).status, 415)
        XCTAssertEqual(submit([("image", "cut.png", image.prefix(60)), job(#"{"task":"upscale"}"#)]).status, 400)
        let mask = submit([("image", "a.png", image), ("mask", "m.png", try png(8, 8, channels: 1)), job(#"{"task":"inpaint"}"#)])
        XCTAssertEqual(mask.status, 422)
        XCTAssertTrue(mask.error.contains("the mask is 8×8"), mask.error)
        for (spec, words) in [(#"{"method":"bogus"}"#, "unknown method"), (#"{"task":"sharpen"}"#, "unknown task"),
                              (#"{"method":"ddnm","options":{"degradation":"pool:4","steps":0}}"#, "--steps must be between 1 and 1000"),
                              (#"{"method":"ddnm","options":{"steps":10}}"#, "degradation is missing"),
                              (#"{"method":"ddnm","options":{"degradation":"mask:/etc/passwd"}}"#, "mask:mask"),
                              (#"{"task":"upscale","model":"../../etc/x"}"#, "not given as paths"),
                              (#"{"task":"upscale","scale":5}"#, "2, 3 or 4"), ("not json", "JSON"),
                              (#"{"method":"diffir","options":{"tile":20}}"#, "--tile must be 0"),
                              (#"{"method":"diffir","options":{"tile":"big"}}"#, "tile"),
                              (#"{"method":"ldm","options":{"tile":4}}"#, "--tile must be 0"),
                              (#"{"method":"ldm","options":{"eta":-1}}"#, "--eta"),
                              (#"{"method":"ldm","options":{"firstStage":"tiles"}}"#, "firstStage"),
                              (#"{"task":"upscale","seed":"x"}"#, "seed"),
                              (#"{"task":"upscale","model":"Package.swift"}"#, "no model file or installed model named")] {
            let r = submit([("image", "a.png", image), job(spec)])
            XCTAssertEqual(r.status, 400, spec)
            XCTAssertTrue(r.error.contains(words), "\(spec): \(r.error)")
            XCTAssertFalse(r.error.contains("\n"))
        }
        XCTAssertEqual(request("POST", "/jobs", body: Data("{}".utf8), contentType: "application/json").status, 415)
        XCTAssertEqual(request("GET", "/jobs/jnothing").status, 404)
        XCTAssertEqual(request("GET", "/health").status, 200, "still serving")
        let names = try FileManager.default.contentsOfDirectory(atPath: configuration.workFolder)
        XCTAssertEqual(names, [], "refused uploads leave nothing behind")
    }

    func testAFullQueueAnswers429AndCancelStopsARunningJob() throws {
        try start { $0.queueCapacity = 1 }
        let slow = submit([("image", "a.png", try png(128, 128)), job(#"{"task":"denoise","sigma":0.1,"steps":500}"#)])
        XCTAssertEqual(slow.status, 201, slow.error)
        let id = try XCTUnwrap(slow.json["id"] as? String)
        let full = submit([("image", "b.png", try png(8, 8)), job(#"{"task":"upscale"}"#)])
        XCTAssertEqual(full.status, 429)
        XCTAssertTrue(full.error.contains("queue is full"), full.error)
        _ = wait(id, until: ["running"])
        let deadline = Date().addingTimeInterval(60)
        while (request("GET", "/jobs/\(id)").json["done"] as? Int ?? 0) < 2, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertEqual(request("GET", "/jobs/\(id)/result").status, 409, "no result while running")
        let started = Date()
        XCTAssertEqual(request("DELETE", "/jobs/\(id)").status, 200)
        let status = wait(id, seconds: 30)
        XCTAssertEqual(status["state"] as? String, "cancelled")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "cancelled within a network evaluation or two")
        XCTAssertEqual(submit([("image", "b.png", try png(8, 8)), job(#"{"task":"upscale"}"#)]).status, 201, "room again")
    }

    func testResultsExpireAndATokenGuardsTheAPI() throws {
        try start { $0.keepSeconds = 0; $0.token = "secret-token-1" }
        let auth = ["Authorization": "Bearer secret-token-1"]
        XCTAssertEqual(submit([("image", "a.png", try png(8, 8)), job(#"{"task":"upscale"}"#)]).status, 401)
        XCTAssertEqual(request("GET", "/models").status, 401)
        XCTAssertEqual(request("GET", "/").status, 200, "the page itself is public")
        let reply = submit([("image", "a.png", try png(8, 8)), job(#"{"task":"upscale"}"#)], headers: auth)
        XCTAssertEqual(reply.status, 201, reply.error)
        let id = try XCTUnwrap(reply.json["id"] as? String)
        let deadline = Date().addingTimeInterval(60)
        var status = 0
        while Date() < deadline {
            status = request("GET", "/jobs/\(id)?token=secret-token-1").status
            if status == 410 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertEqual(status, 410, "gone after the keep time")
        XCTAssertEqual(request("GET", "/jobs/\(id)/result", headers: auth).status, 410)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: configuration.workFolder), [], "files deleted with the job")
        var open = ServiceConfiguration()
        open.host = "0.0.0.0"
        XCTAssertThrowsError(try open.validate()) { XCTAssertTrue("\($0)".contains("--token")) }
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
