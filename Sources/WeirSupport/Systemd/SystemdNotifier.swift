#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Speaks systemd's notify protocol (`sd_notify(3)`) without libsystemd: one datagram of
/// `KEY=VALUE` lines to the Unix socket named by `$NOTIFY_SOCKET`.
///
/// A unit with `Type=notify` waits for `READY=1`; with `WatchdogSec=` it restarts the
/// service when `WATCHDOG=1` stops coming for that long (systemd passes the interval as
/// `$WATCHDOG_USEC`).
///
/// ```swift
/// if let notifier = SystemdNotifier(environment: ProcessInfo.processInfo.environment) {
///     notifier.send("READY=1")
/// }
/// ```
public struct SystemdNotifier: Sendable {
    /// The socket path; a leading `@` names an abstract socket.
    public let socketPath: String
    /// systemd's watchdog interval (`$WATCHDOG_USEC`), when the unit has one and it is
    /// meant for this process (`$WATCHDOG_PID`, when set, is ours).
    public let watchdog: Duration?

    /// `nil` when not started by systemd with a notify socket.
    public init?(environment: [String: String], pid: Int32 = getpid()) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty,
              path.hasPrefix("/") || path.hasPrefix("@") else { return nil }
        socketPath = path
        var watchdog: Duration?
        if let usec = environment["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0,
           environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == pid }) ?? true {
            watchdog = .microseconds(usec)
        }
        self.watchdog = watchdog
    }

    /// Sends `state` (for example `READY=1`, `WATCHDOG=1`, `STATUS=...`); returns whether
    /// the datagram went out. Never blocks: a datagram socket without a reader drops it.
    @discardableResult
    public func send(_ state: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }   // abstract namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.enumerated() { raw[i] = byte }
        }
        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let sent = Array(state.utf8).withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        return sent == state.utf8.count
    }
}
