import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Plays systemd's side of `sd_notify`: a Unix datagram socket the test binds and passes
/// to a process as `NOTIFY_SOCKET`; `receive()` returns the datagrams that came.
public final class NotifySocket: Sendable {
    public let path: String
    private let fd: Int32

    /// Binds `directory/notify.sock`.
    public init(in directory: String) throws {
        path = "\(directory)/notify-\(UInt32.random(in: 0...UInt32.max)).sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket(AF_UNIX) failed: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw TestSupportError("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw TestSupportError("bind(\(path)) failed: errno \(errno)")
        }
        self.fd = fd
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Every datagram waiting now (without blocking), oldest first.
    public func receive() -> [String] {
        var out: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return out }
            out.append(String(decoding: buffer[..<n], as: UTF8.self))
        }
    }
}
