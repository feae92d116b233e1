import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
@testable import WeirCloud
import WeirCore
#if canImport(Glibc)
import Glibc
#endif

/// A refusal sent before the body was read (413, 400, 401, 415) closes the connection, so a
/// client that writes its whole body before reading the answer gets it at once instead of
/// waiting for its own timeout.
@Suite struct EarlyRefusalTests {
    struct RawAnswer {
        var status: Int
        var head: String
        /// The server closed the connection after the answer.
        var closed: Bool
        var seconds: Double
    }

    /// A plain socket client: writes the request head and `bodyBytes` bytes of body, all of
    /// it (unless the server closes first), and only then reads the answer until the
    /// server closes or 10 s pass.
    static func writeWholeBodyThenRead(port: Int, head: String, bodyBytes: Int) throws -> RawAnswer {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WeirError(.storage, "socket() failed") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw WeirError(.storage, "connect() failed: \(errno)") }
        let started = Date()
        func send(_ bytes: [UInt8]) -> Bool {
            var sent = 0
            while sent < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return false }   // closed by the server (or the 10 s send timeout)
                sent += n
            }
            return true
        }
        if send(Array(head.utf8)) {
            let chunk = [UInt8](repeating: UInt8(ascii: " "), count: 1 << 16)
            var left = bodyBytes
            while left > 0 {
                if !send(left >= chunk.count ? chunk : Array(chunk.prefix(left))) { break }
                left -= min(left, chunk.count)
            }
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var closed = false
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 { answer.append(contentsOf: buffer[0..<n]); continue }
            closed = n == 0 || errno == ECONNRESET
            break
        }
        let text = String(decoding: answer, as: UTF8.self)
        let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
        let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return RawAnswer(status: status, head: head, closed: closed, seconds: Date().timeIntervalSince(started))
    }

    static func request(contentType: String = "application/json", token: String? = CloudHarness.token, length: Int) -> String {
        var head = "POST /v1/batches HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \(contentType)\r\nContent-Length: \(length)\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        return head + "\r\n"
    }

    @Test(arguments: [
        // (what, head, body bytes, status)
        ("over max_body", EarlyRefusalTests.request(length: 27 << 20), 27 << 20, 413),
        ("no token", EarlyRefusalTests.request(token: nil, length: 8 << 20), 8 << 20, 401),
        ("unknown type", EarlyRefusalTests.request(contentType: "text/csv", length: 8 << 20), 8 << 20, 415),
        // Read and parsed before it is refused (a body under max_body), so a small one.
        ("not a batch", EarlyRefusalTests.request(length: 256 << 10), 256 << 10, 400),
    ])
    func aRefusalReachesAClientThatWritesTheWholeBodyFirst(what: String, head: String, bodyBytes: Int, status: Int) async throws {
        let harness = try CloudHarness()
        defer { harness.removeFiles() }
        try await harness.withClient(.live) { client in
            let port = try #require(client.port)
            let answer = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<RawAnswer, any Error>) in
                Thread.detachNewThread {
                    continuation.resume(with: Result { try Self.writeWholeBodyThenRead(port: port, head: head, bodyBytes: bodyBytes) })
                }
            }
            #expect(answer.status == status, "\(what): \(answer.head)")
            #expect(answer.head.lowercased().contains("connection: close"), "\(what): \(answer.head)")
            #expect(answer.closed, "\(what): the server must close the connection after an early refusal")
            // Well under the server's 5 s lingering close; writing 27 MiB over loopback took
            // up to 1.5 s in a loaded full-suite run (headless chromium beside it).
            #expect(answer.seconds < 3, "\(what): the answer took \(answer.seconds) s")
            // The server still serves new connections.
            #expect(try await client.post(Batch(gateway: "gw-1", id: "after", readings: readings("d1", [(t0, 1)]))).0 == .ok)
        }
    }
}
