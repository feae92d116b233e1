import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import Synchronization
import WeirCompression
import WeirCore
import WeirSupport
import WeirWire

/// `POST /v1/batches`: authenticates the gateway, reads the body within the size cap,
/// undoes `Content-Encoding`, decodes the batch by `Content-Type`, applies it in one
/// store transaction and answers `200` with the counts only after the commit.
///
/// Answers: `400` for a body that is not a batch (JSON error naming the problem), `401`
/// for a missing or unknown token, `403` for a token of another gateway (or, under mutual
/// TLS, a client certificate that does not name the token's gateway), `413` over the
/// size cap, `415` for an unknown type or encoding, `429` + `Retry-After` over the
/// gateway's `max_readings_per_second`, `503` + `Retry-After` when too many batches are
/// waiting for the store.
///
/// A gateway bound to `devices:` has its readings and drop-ledger rows for other devices
/// refused one by one (kept in the `rejected` table, counted `forbidden`); the rest of the
/// batch is applied.
public final class BatchIngest: Sendable {
    let store: any ReadingStore
    let authenticator: GatewayAuthenticator
    let maxBodyBytes: Int
    let maxDecodedBytes: Int
    let maxPending: Int
    let pending = Atomic<Int>(0)
    let metrics = IngestMetrics()
    let limiter = IngestRateLimiter()
    /// Mutual TLS: the client certificate must name the gateway whose token it presents.
    let checksClientCertificate: Bool

    init(store: any ReadingStore, config: CloudConfiguration) throws(WeirError) {
        self.store = store
        self.authenticator = try GatewayAuthenticator(gateways: config.gateways, insecureNoAuth: config.insecureNoAuth)
        self.checksClientCertificate = config.tls?.clientCAFile != nil
        self.maxBodyBytes = config.maxBodyBytes
        self.maxDecodedBytes = config.maxDecodedBytes
        self.maxPending = config.maxPendingBatches
    }

    func handle(_ request: Request, context: CloudRequestContext) async throws -> Response {
        do {
            return try await apply(request, context: context)
        } catch var refusal as CloudHTTPError where Self.closesConnection(refusal.status) {
            // Most refusals come before the body is read; the client may still be sending it.
            refusal.closesConnection = true
            throw refusal
        }
    }

    /// Refusals after which the connection is closed (see ``LingeringCloseHandler``): a
    /// body the server will not read is not worth waiting for. 429/503 keep it open, the
    /// edge retries on it.
    static func closesConnection(_ status: HTTPResponse.Status) -> Bool {
        [.badRequest, .unauthorized, .forbidden, .contentTooLarge, .unsupportedMediaType].contains(status)
    }

    private func apply(_ request: Request, context: CloudRequestContext) async throws -> Response {
        let gateway = try authenticator.gateway(for: request)
        if checksClientCertificate, let gateway {
            // The handshake already checked the certificate against client_ca_file.
            let names = await ClientCertificateNames.ofPeer(on: context.channel) ?? []
            guard names.contains(gateway.name) else {
                metrics.forbiddenCertificate.increment()
                throw CloudHTTPError(.forbidden, "the client certificate names \(names.isEmpty ? "no gateway" : names.map { "'\($0.prefix(64))'" }.joined(separator: ", ")), not gateway '\(gateway.name)' whose token was presented")
            }
        }
        var decoded = try await decode(request)
        if let bad = decoded.batch.drops.firstIndex(where: { $0.count < 0 || $0.count > Self.maxDropCount || $0.from > $0.to }) {
            throw CloudHTTPError(.badRequest, "drops[\(bad)] is not a valid drop-ledger row (count 0–\(Self.maxDropCount), from ≤ to)")
        }
        if let gateway, gateway.name != decoded.batch.gateway {
            throw CloudHTTPError(.forbidden, "the token belongs to gateway '\(gateway.name)', not '\(decoded.batch.gateway.prefix(128))'")
        }
        if let gateway, let rate = gateway.maxReadingsPerSecond {
            // Before the batch waits for the store: a gateway over its limit holds up no one.
            if case .refused(let wait) = limiter.admit(gateway: gateway.name, readings: decoded.readingCount, perSecond: rate, now: .now) {
                metrics.rateLimited.increment()
                let seconds = max(1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
                throw CloudHTTPError(.tooManyRequests, "gateway '\(gateway.name)' is over its max_readings_per_second (\(Self.rateText(rate))); retry in \(seconds)s",
                                     retryAfter: seconds)
            }
        }
        var forbidden = 0
        if let gateway, !gateway.devices.isAll {
            forbidden = Self.bind(&decoded, to: gateway.devices, gateway: gateway.name)
            if forbidden > 0 { metrics.forbidden.increment(by: forbidden) }
        }
        let waiting = pending.wrappingAdd(1, ordering: .relaxed).newValue
        defer { pending.wrappingSubtract(1, ordering: .relaxed) }
        guard waiting <= maxPending else {
            metrics.overloaded.increment()
            throw CloudHTTPError(.serviceUnavailable, "too many batches waiting for the store (\(maxPending)); retry later", retryAfter: 1)
        }
        let started = ContinuousClock.now
        let outcome: BatchOutcome
        do {
            outcome = try await store.apply(decoded, receivedAt: WallClock.nowMs())
        } catch {
            context.logger.error("batch not applied", metadata: ["weir.batch": "\(decoded.batch.id.prefix(64))", "weir.error": "\(error)"])
            metrics.failed.increment()
            throw CloudHTTPError(.serviceUnavailable, "the batch could not be stored; retry later", retryAfter: 2)
        }
        metrics.record(outcome, commit: ContinuousClock.now - started)
        context.logger.debug("batch applied", metadata: [
            "weir.gateway": "\(decoded.batch.gateway)", "weir.batch": "\(outcome.batch)",
            "weir.accepted": "\(outcome.accepted)", "weir.duplicates": "\(outcome.duplicates)",
        ])
        var answer = BatchAnswer(outcome)
        answer.forbidden = forbidden
        return CloudJSON.response(answer)
    }

    static func rateText(_ rate: Double) -> String {
        rate == rate.rounded() && rate < 1e15 ? "\(Int64(rate))/s" : "\(rate)/s"
    }

    /// Refuses the readings and drop-ledger rows of devices outside `scope`: they move to
    /// `rejected` / `rejectedDrops` (by their index in the body) and the rest stay. Returns
    /// how many were refused.
    static func bind(_ decoded: inout DecodedBatch, to scope: DeviceScope, gateway: String) -> Int {
        func reason(_ device: String) -> String {
            "forbidden: gateway '\(gateway)' may not write device '\(device.prefix(128))' (its devices: \(scope.text))"
        }
        let alreadyRejected = Set(decoded.rejected.map(\.index))
        var kept: [Reading] = []
        var refused: [RejectedReading] = []
        var bodyIndex = 0
        var lastDevice: String?
        var lastAllowed = true
        for (position, reading) in decoded.batch.readings.enumerated() {
            while alreadyRejected.contains(bodyIndex) { bodyIndex += 1 }
            // Batches come grouped by series: most readings repeat the last device.
            if reading.device != lastDevice {
                lastDevice = reading.device
                lastAllowed = scope.allows(reading.device)
                if !lastAllowed && refused.isEmpty {
                    kept.reserveCapacity(decoded.batch.readings.count)
                    kept.append(contentsOf: decoded.batch.readings.prefix(position))
                }
            }
            if !lastAllowed {
                refused.append(RejectedReading(
                    index: bodyIndex, reason: reason(reading.device),
                    raw: #"{"device":"\#(reading.device)","metric":"\#(reading.metric)","ts":\#(reading.ts),"value":\#(reading.value)}"#))
            } else if !refused.isEmpty {
                kept.append(reading)
            }
            bodyIndex += 1
        }
        if !refused.isEmpty {
            decoded.batch.readings = kept
            decoded.rejected = (decoded.rejected + refused).sorted { $0.index < $1.index }
        }
        var keptDrops: [DropRecord] = []
        var refusedDrops: [RejectedReading] = []
        for (index, drop) in decoded.batch.drops.enumerated() {
            if scope.allows(drop.device) {
                keptDrops.append(drop)
            } else {
                refusedDrops.append(RejectedReading(
                    index: index, reason: "drop-ledger row: " + reason(drop.device),
                    raw: #"{"drop":true,"device":"\#(drop.device)","metric":"\#(drop.metric)","from":\#(drop.from),"to":\#(drop.to),"count":\#(drop.count)}"#))
            }
        }
        if !refusedDrops.isEmpty {
            decoded.batch.drops = keptDrops
            decoded.rejectedDrops = refusedDrops
        }
        return refused.count + refusedDrops.count
    }

    /// Reads and decodes the body; throws the HTTP error that fits the problem. What the
    /// headers alone rule out (size, encoding, type) is refused before the body is read.
    func decode(_ request: Request) async throws -> DecodedBatch {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBodyBytes {
            throw CloudHTTPError(.contentTooLarge, "body is \(length) bytes, more than the \(maxBodyBytes) allowed")
        }
        let encoding = (request.headers[.contentEncoding] ?? "identity").trimmingCharacters(in: .whitespaces).lowercased()
        guard ["identity", "", "gzip", "x-gzip", "zstd"].contains(encoding) else {
            throw CloudHTTPError(.unsupportedMediaType, "Content-Encoding '\(encoding.prefix(40))' is not supported (use gzip or zstd, or none)")
        }
        let mediaType = (request.headers[.contentType] ?? "application/json")
            .split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard ["application/json", "", "application/vnd.weir.batch"].contains(mediaType) else {
            throw CloudHTTPError(.unsupportedMediaType, "Content-Type '\(mediaType.prefix(60))' is not supported (use application/json or application/vnd.weir.batch)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw CloudHTTPError(.contentTooLarge, "body is more than the \(maxBodyBytes) bytes allowed")
        }
        var bytes = Array(buffer.readableBytesView)

        do {
            switch encoding {
            case "identity", "":
                break
            case "gzip", "x-gzip":
                bytes = try Gzip.decompress(bytes, maxSize: maxDecodedBytes)
            case "zstd":
                bytes = try Zstd.decompress(bytes, maxSize: maxDecodedBytes)
            default:
                throw CloudHTTPError(.unsupportedMediaType, "Content-Encoding '\(encoding.prefix(40))' is not supported (use gzip or zstd, or none)")
            }
        } catch let error as CompressionError {
            throw Self.compressionProblem(error, what: "\(encoding) body")
        }

        switch mediaType {
        case "application/json", "":
            do {
                return try Batch.decodeJSON(bytes)
            } catch {
                throw CloudHTTPError(.badRequest, error.message)
            }
        case "application/vnd.weir.batch":
            let batch: Batch
            do {
                batch = try WireBatch.decode(bytes, maxSize: maxDecodedBytes)
            } catch let error as CompressionError {
                throw Self.compressionProblem(error, what: "binary batch")
            } catch {
                throw CloudHTTPError(.badRequest, "body is not a binary Weir batch: \(error)")
            }
            return Self.validated(batch)
        default:
            throw CloudHTTPError(.unsupportedMediaType, "Content-Type '\(mediaType.prefix(60))' is not supported (use application/json or application/vnd.weir.batch)")
        }
    }

    /// The largest loss one drop-ledger row may report; more is a damaged or hostile row
    /// (and would overflow the per-device totals).
    static let maxDropCount: Int64 = 1_000_000_000_000

    /// Splits a decoded binary batch into valid readings and rejected ones, like the JSON
    /// decoder does.
    static func validated(_ batch: Batch) -> DecodedBatch {
        var valid: [Reading] = []
        valid.reserveCapacity(batch.readings.count)
        var rejected: [RejectedReading] = []
        for (index, reading) in batch.readings.enumerated() {
            if let problem = reading.problem {
                rejected.append(RejectedReading(index: index, reason: problem.description,
                                                raw: "\(reading.device.prefix(128))/\(reading.metric.prefix(128)) ts=\(reading.ts) value=\(reading.value)"))
            } else {
                valid.append(reading)
            }
        }
        var clean = batch
        clean.readings = valid
        return DecodedBatch(batch: clean, rejected: rejected, readingCount: batch.readings.count)
    }

    /// Decompression output over the cap is `413`; a damaged stream is `400`.
    static func compressionProblem(_ error: CompressionError, what: String) -> CloudHTTPError {
        if error.code == .tooLarge {
            return CloudHTTPError(.contentTooLarge, "\(what): \(error.message)")
        }
        return CloudHTTPError(.badRequest, "\(what) cannot be decompressed: \(error.message)")
    }

}

extension BatchAnswer {
    /// The answer for a committed batch's outcome.
    init(_ outcome: BatchOutcome) {
        self.init(batch: outcome.batch, accepted: outcome.accepted, duplicates: outcome.duplicates, late: outcome.late,
                  conflicts: outcome.conflicts, tooLate: outcome.tooLate, droppedLate: outcome.droppedLate,
                  rejected: outcome.rejected.map { Rejected(index: $0.index, reason: $0.reason) })
    }
}

/// The cloud's Prometheus counters (through swift-metrics).
struct IngestMetrics: Sendable {
    let batches = Counter(label: "weir_cloud_batches_total")
    let readings = Counter(label: "weir_cloud_readings_total")
    let accepted = Counter(label: "weir_cloud_readings_accepted_total")
    let duplicates = Counter(label: "weir_cloud_duplicates_total")
    let late = Counter(label: "weir_cloud_late_total")
    let conflicts = Counter(label: "weir_cloud_conflicts_total")
    let rejected = Counter(label: "weir_cloud_rejected_total")
    let droppedLate = Counter(label: "weir_cloud_dropped_late_total")
    let overloaded = Counter(label: "weir_cloud_overloaded_total")
    let failed = Counter(label: "weir_cloud_batch_failures_total")
    /// Readings and drop-ledger rows refused because the gateway may not write their device.
    let forbidden = Counter(label: "weir_cloud_forbidden_total")
    /// Batches refused with 429 over a gateway's max_readings_per_second.
    let rateLimited = Counter(label: "weir_cloud_rate_limited_total")
    /// Batches refused because the client certificate does not name the token's gateway.
    let forbiddenCertificate = Counter(label: "weir_cloud_forbidden_certificate_total")
    let commit = Metrics.Timer(label: "weir_cloud_commit_seconds", preferredDisplayUnit: .seconds)
    let watermarkLag = Gauge(label: "weir_cloud_watermark_lag_seconds")

    func record(_ outcome: BatchOutcome, commit duration: Duration) {
        batches.increment()
        readings.increment(by: outcome.received)
        accepted.increment(by: outcome.accepted)
        duplicates.increment(by: outcome.duplicates)
        late.increment(by: outcome.late)
        conflicts.increment(by: outcome.conflicts)
        rejected.increment(by: outcome.rejected.count)
        droppedLate.increment(by: outcome.droppedLate)
        commit.recordNanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        if let watermark = outcome.newestWatermark {
            watermarkLag.record(Double(WallClock.nowMs() - watermark) / 1000)
        }
    }
}
