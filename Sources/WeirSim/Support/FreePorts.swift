import NIOCore
import NIOPosix
import WeirCore

/// Free TCP ports on the loopback interface, for scripts that start servers.
public enum FreePorts {
    /// `count` distinct ports on 127.0.0.1 that were free a moment ago (all sockets are
    /// held open until every port is known, then released).
    public static func allocate(_ count: Int) throws(WeirError) -> [Int] {
        var channels: [any Channel] = []
        defer { for channel in channels { try? channel.close().wait() } }
        var ports: [Int] = []
        do {
            for _ in 0..<count {
                let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .bind(host: "127.0.0.1", port: 0).wait()
                channels.append(channel)
                ports.append(channel.localAddress?.port ?? 0)
            }
        } catch {
            throw WeirError(.network, "cannot bind a free port on 127.0.0.1", cause: error)
        }
        return ports
    }
}
