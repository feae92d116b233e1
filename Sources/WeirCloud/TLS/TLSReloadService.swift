import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the TLS certificate and key on `SIGHUP`. New connections get the new
/// certificate; open ones keep theirs. A reload that fails keeps the old certificate and
/// logs why.
struct TLSReloadService: Service {
    let credentials: CloudTLSCredentials
    let logger: Logger

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() {
            do {
                try credentials.reload()
                logger.notice("SIGHUP: reloaded the TLS certificate and key", metadata: [
                    "weir.cert_file": "\(credentials.files.certFile)", "weir.serial": "\(credentials.servedSerial)",
                ])
            } catch {
                logger.error("SIGHUP: TLS reload failed; still serving the previous certificate", metadata: ["weir.error": "\(error)"])
            }
        }
    }
}
