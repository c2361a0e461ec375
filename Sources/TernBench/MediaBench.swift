import AsyncHTTPClient
import Foundation
import NIOCore
import TernMedia

/// `tern-bench thumbs FILE N`: thumbnails per second for FILE in-process (libav, one
/// thread) next to running the `ffmpeg` command for the same job N times.
func thumbnailBenchmark(_ args: [String]) throws {
    guard args.count >= 3, let n = Int(args[2]) else {
        FileHandle.standardError.write(Data("usage: tern-bench thumbs FILE N\n".utf8))
        exit(2)
    }
    let file = args[1]
    let info = try MediaProbe.probe(path: file)
    _ = try MediaProbe.process(path: file, declaredText: false, filename: nil, thumbnailSide: 320)  // warm-up
    var times: [Double] = []
    for _ in 0..<n {
        // What an upload does: probe, thumbnail and preview from one opened input.
        let start = ContinuousClock.now
        _ = try MediaProbe.process(path: file, declaredText: false, filename: nil, thumbnailSide: 320)
        times.append(seconds(ContinuousClock.now - start))
    }
    var ffmpeg: [Double] = []
    let out = NSTemporaryDirectory() + "tern-bench-thumb-\(getpid()).jpg"
    for _ in 0..<n {
        let start = ContinuousClock.now
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // The seed's command (scale to 320 px wide, first frame), plus seeking to 1 s for videos.
        p.arguments = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"] + (info.kind == .video ? ["-ss", "1"] : [])
            + ["-i", file, "-vf", "scale='min(320,iw)':-2", "-frames:v", "1", out]
        try p.run()
        p.waitUntilExit()
        ffmpeg.append(seconds(ContinuousClock.now - start))
    }
    try? FileManager.default.removeItem(atPath: out)
    let inProcess = median(times)
    let command = median(ffmpeg)
    let line: [String: Any] = [
        "workload": "thumbs", "file": (file as NSString).lastPathComponent, "width": info.width ?? 0, "height": info.height ?? 0,
        "in_process_ms_p50": inProcess * 1000, "in_process_per_s": 1 / inProcess,
        "ffmpeg_ms_p50": command * 1000, "ffmpeg_per_s": 1 / command, "speedup": command / inProcess, "runs": n,
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
}

/// `tern-bench upload --port P FILE N`: uploads FILE N times over one connection (logged
/// in with an echoed code); prints MB/s, then ranged-download MB/s of the same media in
/// 1 MiB ranges.
func uploadBenchmark(_ args: [String]) async throws {
    var port = 8080
    var rest: [String] = []
    var i = 1
    while i < args.count {
        if args[i] == "--port", i + 1 < args.count {
            port = Int(args[i + 1]) ?? port
            i += 2
        } else {
            rest.append(args[i])
            i += 1
        }
    }
    guard rest.count >= 2, let n = Int(rest[1]) else {
        FileHandle.standardError.write(Data("usage: tern-bench upload --port P FILE N\n".utf8))
        exit(2)
    }
    let bytes = [UInt8](FileManager.default.contents(atPath: rest[0]) ?? Data())
    let api = API(host: "127.0.0.1", port: port, salt: String(Int.random(in: 100...999)))
    let user = try await api.login("uploader")
    let boundary = "tern-bench-boundary"
    var body = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\((rest[0] as NSString).lastPathComponent)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
    body += bytes
    body += Array("\r\n--\(boundary)--\r\n".utf8)
    let buffer = ByteBuffer(bytes: body)
    var url = ""
    let start = ContinuousClock.now
    for _ in 0..<n {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/v1/media/upload")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(user.token)")
        request.headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
        request.body = .bytes(buffer)
        let response = try await api.http.execute(request, timeout: .seconds(120))
        let data = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code == 201 else { throw LoadError.http("/media/upload", Int(response.status.code), String(buffer: data)) }
        let json = (try JSONSerialization.jsonObject(with: Data(data.readableBytesView)) as? [String: Any])?["data"] as? [String: Any]
        url = json?["url"] as? String ?? ""
    }
    let uploadSeconds = seconds(ContinuousClock.now - start)

    // Ranged download: the whole file in 1 MiB ranges, n times.
    let chunk = 1 << 20
    let downloadStart = ContinuousClock.now
    var received = 0
    for _ in 0..<n {
        var offset = 0
        while offset < bytes.count {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(url)")
            request.headers.add(name: "Range", value: "bytes=\(offset)-\(min(offset + chunk, bytes.count) - 1)")
            let response = try await api.http.execute(request, timeout: .seconds(60))
            let data = try await response.body.collect(upTo: chunk)
            received += data.readableBytes
            offset += chunk
        }
    }
    let downloadSeconds = seconds(ContinuousClock.now - downloadStart)
    let mb = Double(bytes.count * n) / 1_000_000
    let line: [String: Any] = [
        "workload": "upload", "file_bytes": bytes.count, "uploads": n, "upload_mb_per_s": mb / uploadSeconds,
        "ranged_download_mb_per_s": Double(received) / 1_000_000 / downloadSeconds, "range_bytes": chunk,
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
    try await api.http.shutdown()
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}
