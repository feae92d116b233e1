import Foundation
import Synchronization

/// Free TCP ports on the loopback interface, for servers started by tests.
public enum FreePort {
    /// Ports handed out by this process, never handed out twice: two tests starting
    /// servers at once cannot get the same one.
    private static let handedOut = Mutex<Set<Int>>([])

    /// A free port below the kernel's ephemeral range, never handed out before in this
    /// process. Below that range because outgoing connections (the tests' thousands of
    /// MQTT and HTTP clients) take their local ports from it: a port read back from a
    /// bind to port 0 could be taken by one of them before the server binds it
    /// ("Address already in use" — seen with brokers started side by side).
    public static func allocate() throws -> Int {
        let top = ephemeralLow - 1
        for _ in 0..<500 {
            let port = Int.random(in: 10_000...top)
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if canBind(port) { return port }
        }
        throw TestSupportError("no free loopback port found below \(ephemeralLow)")
    }

    /// The low end of `net.ipv4.ip_local_port_range` (32768 when it cannot be read).
    static let ephemeralLow: Int = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let low = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32_768
        return low > 12_000 ? low : 32_768
    }()

    /// Whether a server could bind 127.0.0.1:`port` now.
    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
    public static func isAccepting(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return rc == 0
    }
}

/// A failure in test scaffolding (a process that would not start, a port that stayed closed).
public struct TestSupportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
