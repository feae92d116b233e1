import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOHTTP1
import NIOCore
import ServiceLifecycle
import WeirCompression
import WeirCore

/// Forwards sealed chunks to weir-cloud: `POST /v1/batches`, several chunks per request
/// up to `uplink.max_request_bytes`, deleted only after a 2xx.
///
/// - network errors, 408, 5xx: retry the same batch with full-jitter backoff;
///   429/503 wait `Retry-After` when given; with several `uplink.url`s (replicas), a
///   network error or a 5xx moves to the next URL at once, and the backoff starts only
///   when every URL has failed in a row (a replica gets the same batch again safely:
///   the cloud applies it once);
/// - 401/403: keep everything, back off, report "uplink unauthorized";
/// - a certificate problem (the cloud's certificate does not verify against
///   `uplink.ca_file` or does not name the host; the cloud refuses our client
///   certificate): keep everything, back off, report "uplink certificate problem"
///   naming the key to fix;
/// - 404/405: keep everything, back off, report "uplink endpoint not found" — the URL is
///   wrong (weir-cloud always has `POST /v1/batches`), which says nothing about the batch;
/// - 413: split the batch and send the halves; pieces the cloud commits are forwarded
///   even when a later piece fails, and only the piece that failed is rejected;
/// - other 4xx: move the chunks to the `rejected` table with the response;
/// - a chunk that does not decode is quarantined, the rest goes on.
struct UplinkService: Service {
    let configuration: EdgeConfiguration
    let buffer: EdgeBuffer
    let inFlight: InFlightChunks
    let metrics: EdgeMetrics
    /// Beaten before every request and wait with how long it may take, so the liveness
    /// monitor sees a loop that does not come back.
    let heartbeat: LoopHeartbeat
    let logger: Logger

    /// The outcome of one POST.
    enum Response {
        case committed
        /// `failover`: another URL may do better (the connection failed, or a 5xx).
        case retry(after: Duration?, reason: String, failover: Bool)
        case unauthorized(status: Int, body: String)
        /// The TLS handshake failed over a certificate; the message names the key to fix.
        case certificateProblem(String)
        /// 404/405: `uplink.url` does not lead to weir-cloud's batch endpoint.
        case endpointNotFound(status: Int, body: String)
        case tooLarge
        case rejected(status: Int, body: String)
    }

    /// What sending a batch came to: the cloud's answer, the piece it is about (the batch
    /// itself unless a 413 split it) and the pieces of the split the cloud committed
    /// before that answer.
    struct Delivery {
        var response: Response
        var piece: UplinkBatch
        var committed: [UplinkBatch] = []
    }

    func run() async throws {
        // Our own client: a short connect timeout, so a cloud that is down shows up as a
        // failed attempt (and "retrying" in status) instead of a request waiting it out.
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(3), read: .milliseconds(configuration.uplink.timeout.milliseconds))
        // The files were checked when the config loaded.
        config.tlsConfiguration = try configuration.uplinkTLSConfiguration()
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        do {
            try await cancelWhenGracefulShutdown {
                try await self.loop(client)
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
    }

    private func loop(_ client: HTTPClient) async throws {
        var backoff = Backoff(base: configuration.uplink.backoffBase, cap: configuration.uplink.backoffCap)
        var state = "idle"
        var nextSendAt = ContinuousClock.now
        var current: UplinkBatch?
        var firstBatch = true
        var target = UplinkTarget(urls: configuration.uplink.urls)
        try? buffer.setUplinkURL(target.url)
        defer {
            inFlight.clear()
            heartbeat.stop()
        }
        while !Task.isCancelled {
            heartbeat.beat(within: .zero)
            do {
                try await step(client, &current, &firstBatch, &backoff, &state, &nextSendAt, &target)
            } catch is CancellationError {
                return
            } catch {
                // The buffer file misbehaved (disk full, I/O error): keep the chunks, try again.
                logger.error("uplink step failed; retrying", metadata: ["weir.error": "\(error)"])
                try? buffer.setUplinkState("error", error: "\(error)")
                try await pause(for: backoff.next())
            }
        }
    }

    private func step(_ client: HTTPClient, _ current: inout UplinkBatch?, _ firstBatch: inout Bool, _ backoff: inout Backoff, _ state: inout String,
                      _ nextSendAt: inout ContinuousClock.Instant, _ target: inout UplinkTarget) async throws {
        if current == nil {
            current = try prepareBatch(&firstBatch)
            if current == nil {
                try await pause(for: configuration.buffer.flushInterval)
                return
            }
        }
        guard let batch = current else { return }
        inFlight.set(batch.seqs)

        let delivery = await deliver(batch, client: client, url: target.url, nextSendAt: &nextSendAt)
        if !delivery.committed.isEmpty {
            // A 413 split the batch and the cloud committed some pieces before it answered
            // otherwise for another: those are forwarded, whatever becomes of the rest,
            // which is read afresh for the next batch.
            try forwardCommitted(delivery.committed, of: batch)
            current = nil
        }
        switch delivery.response {
        case .committed:
            try buffer.markForwarded(seqs: batch.seqs, dropIDs: batch.drops.map(\.id), readings: batch.readingCount)
            metrics.forwardedReadings.increment(by: Int64(batch.readingCount))
            metrics.forwardedBatches.increment()
            metrics.unauthorized.record(0)
            metrics.uplinkUp.record(1)
            logger.debug("batch committed", metadata: ["weir.batch": "\(batch.id)", "weir.readings": "\(batch.readingCount)"])
            if state != "ok" {
                if state != "idle" { logger.info("uplink recovered", metadata: ["weir.batch": "\(batch.id)"]) }
                state = "ok"
                try? buffer.setUplinkState(state, error: nil)
            }
            backoff.reset()
            target.succeeded()
            current = nil
            inFlight.clear()
        case .rejected(let status, let body):
            let piece = delivery.piece
            logger.error("cloud rejected a batch for good; its chunks moved to the rejected table",
                         metadata: ["weir.batch": "\(piece.id)", "weir.status": "\(status)", "weir.response": "\(body.prefix(300))"])
            try buffer.reject(seqs: piece.seqs, dropIDs: piece.drops.map(\.id), batch: piece.id, status: status, response: body)
            metrics.rejected.increment(by: Int64(piece.seqs.count))
            try? buffer.setUplinkState("ok", error: "batch \(piece.id) rejected with \(status): \(body.prefix(300))")
            current = nil
            inFlight.clear()
        case .unauthorized(let status, let body):
            metrics.unauthorized.record(1)
            metrics.retries.increment()
            if state != "unauthorized" {
                state = "unauthorized"
                logger.error("uplink unauthorized: the cloud refused the gateway token (\(status)); keeping every chunk and retrying",
                             metadata: ["weir.response": "\(body.prefix(200))"])
                try? buffer.setUplinkState("uplink unauthorized", error: "uplink unauthorized (HTTP \(status)): \(body.prefix(200))")
            }
            try await pause(for: backoff.next())
        case .certificateProblem(let message):
            metrics.retries.increment()
            metrics.uplinkUp.record(0)
            if state != "certificate problem" {
                state = "certificate problem"
                var text = message
                // Once per episode: which of unknown CA, expired or not yet valid it is.
                if message.contains("did not verify"),
                   let why = await CloudCertificateDiagnosis.explain(url: configuration.uplink.url, caFile: configuration.uplink.caFile) {
                    text = "uplink certificate problem: \(why)"
                }
                logger.error("\(text); keeping every chunk and retrying")
                try? buffer.setUplinkState("uplink certificate problem", error: text)
            }
            try await pause(for: backoff.next())
        case .endpointNotFound(let status, let body):
            metrics.retries.increment()
            metrics.uplinkUp.record(0)
            if state != "endpoint not found" {
                state = "endpoint not found"
                let url = target.url
                logger.error("uplink endpoint not found: \(url) answered \(status) to POST /v1/batches; check uplink.url. Keeping every chunk and retrying",
                             metadata: ["weir.response": "\(body.prefix(200))"])
                try? buffer.setUplinkState("uplink endpoint not found",
                                           error: "uplink endpoint not found (HTTP \(status) from \(url)/v1/batches; check uplink.url): \(body.prefix(200))")
            }
            try await pause(for: backoff.next())
        case .retry(let after, let reason, let failover):
            metrics.retries.increment()
            if failover, let next = target.failed() {
                // Another replica may take it now; back off only once all have failed in a row.
                logger.warning("uplink moving to the next URL", metadata: ["weir.error": "\(reason)", "weir.url": "\(next)"])
                try? buffer.setUplinkURL(next)
                try? buffer.setUplinkState("failing over", error: reason)
                state = "failing over"
                return
            }
            metrics.uplinkUp.record(0)
            if state != "retrying" {
                state = "retrying"
                logger.warning("uplink failing; retrying with backoff", metadata: ["weir.error": "\(reason)"])
                try? buffer.setUplinkState("retrying", error: reason)
            }
            try await pause(for: after ?? backoff.next())
        case .tooLarge:
            // A single reading over the cloud's cap cannot be sent at all.
            let piece = delivery.piece
            logger.error("a single reading is over the cloud's body cap; its chunk moved to the rejected table",
                         metadata: ["weir.batch": "\(piece.id)"])
            try buffer.reject(seqs: piece.seqs, dropIDs: piece.drops.map(\.id), batch: piece.id, status: 413,
                              response: "too large even as a single reading")
            metrics.rejected.increment(by: Int64(piece.seqs.count))
            current = nil
            inFlight.clear()
        }
    }

    /// Marks the pieces of `batch` the cloud committed as forwarded. The chunk of a piece
    /// that is half of one chunk cannot be: it is sent again with its other half (the
    /// cloud counts the repeats as duplicates), or rejected with it; the drop rows that
    /// rode with that half are forwarded.
    private func forwardCommitted(_ pieces: [UplinkBatch], of batch: UplinkBatch) throws {
        for piece in pieces {
            if piece.readings != nil {
                if !piece.drops.isEmpty { try buffer.markForwarded(seqs: [], dropIDs: piece.drops.map(\.id), readings: 0) }
                continue
            }
            try buffer.markForwarded(seqs: piece.seqs, dropIDs: piece.drops.map(\.id), readings: piece.readingCount)
            metrics.forwardedReadings.increment(by: Int64(piece.readingCount))
            metrics.forwardedBatches.increment()
            logger.info("part of a split batch committed; forwarded", metadata: ["weir.batch": "\(piece.id)", "weir.of": "\(batch.id)",
                                                                               "weir.readings": "\(piece.readingCount)"])
        }
    }

    /// Reads the next chunks (in replay order) and the pending drop rows; quarantines
    /// chunks that fail to decode.
    private func prepareBatch(_ firstBatch: inout Bool) throws -> UplinkBatch? {
        let u = configuration.uplink
        var pendingOutbox = firstBatch ? try buffer.outbox() : nil
        firstBatch = false
        let chunks = try inFlight.withLock { sending in
            let next = try pendingOutbox?.chunks
                ?? buffer.nextChunks(replay: u.replay, maxBytes: u.maxRequestBytes, maxReadings: u.maxRequestReadings)
            sending = Set(next.map(\.seq))
            return next
        }
        // Each chunk is checked as it is merged (as columns, no `Reading` per reading) into
        // the request body; one that fails is quarantined and the rest go on.
        var merger = BatchMerger(reservingReadings: chunks.reduce(0) { $0 + $1.readings })
        var parts: [UplinkBatch.Part] = []
        var bodies: [[UInt8]] = []
        for chunk in chunks {
            do {
                try merger.add(WireBatch.unwrap(chunk.body, maxSize: EdgeBuffer.maxChunkDecodedBytes), expecting: chunk.readings)
                parts.append(UplinkBatch.Part(seq: chunk.seq, count: chunk.readings))
                bodies.append(chunk.body)
            } catch {
                logger.error("chunk failed to decode; quarantined", metadata: ["weir.chunk": "\(chunk.seq)", "weir.error": "\(error)"])
                try buffer.quarantine(seq: chunk.seq, reason: "\(error)")
                metrics.quarantined.increment()
            }
        }
        let drops = try pendingOutbox.map { $0.drops } ?? buffer.pendingDrops(limit: 10_000)
        pendingOutbox = nil
        if parts.isEmpty && drops.isEmpty { return nil }
        var batch = UplinkBatch(gateway: configuration.gateway, parts: parts, chunkBodies: bodies, drops: drops)
        if u.format == .binary {
            let raw = merger.encode(gateway: configuration.gateway, id: batch.id, drops: drops.map(\.record))
            _ = consume merger  // freed before zstd allocates its tables
            batch.wireBody = try WireBatch.wrap(raw)
        }
        try buffer.setOutbox(seqs: batch.seqs, dropIDs: batch.drops.map(\.id))
        return batch
    }

    /// Sends `batch`, splitting it on 413 until the pieces fit. Stops at the first piece
    /// the cloud does not commit, and says which pieces it did commit before.
    private func deliver(_ batch: UplinkBatch, client: HTTPClient, url: String, nextSendAt: inout ContinuousClock.Instant) async -> Delivery {
        let response = await post(batch, client: client, url: url, nextSendAt: &nextSendAt)
        guard case .tooLarge = response else { return Delivery(response: response, piece: batch) }
        let halves: [UplinkBatch]
        do {
            guard let split = try batch.split(gateway: configuration.gateway) else { return Delivery(response: .tooLarge, piece: batch) }
            halves = split
        } catch {
            return Delivery(response: .retry(after: nil, reason: "splitting batch \(batch.id) failed: \(error)", failover: false), piece: batch)
        }
        logger.info("cloud said 413: splitting the batch", metadata: ["weir.batch": "\(batch.id)", "weir.readings": "\(batch.readingCount)"])
        var committed: [UplinkBatch] = []
        for half in halves {
            let delivery = await deliver(half, client: client, url: url, nextSendAt: &nextSendAt)
            if case .committed = delivery.response {
                committed.append(half)
                continue
            }
            return Delivery(response: delivery.response, piece: delivery.piece, committed: committed + delivery.committed)
        }
        return Delivery(response: .committed, piece: batch)
    }

    private func post(_ batch: UplinkBatch, client: HTTPClient, url: String, nextSendAt: inout ContinuousClock.Instant) async -> Response {
        let u = configuration.uplink
        let body: [UInt8]
        let contentType: String
        do {
            switch u.format {
            case .binary:
                body = try batch.wire(gateway: configuration.gateway)
                contentType = "application/vnd.weir.batch"
            case .json:
                body = try batch.batch(gateway: configuration.gateway).jsonBytes()
                contentType = "application/json"
            }
        } catch {
            return .retry(after: nil, reason: "encoding batch \(batch.id) failed: \(error)", failover: false)
        }
        if let bandwidth = u.bandwidth, bandwidth > 0 {
            let now = ContinuousClock.now
            if nextSendAt > now {
                heartbeat.beat(within: nextSendAt - now)
                try? await Task.sleep(until: nextSendAt)
            }
            nextSendAt = max(nextSendAt, now) + .milliseconds(Int64(body.count) * 1000 / bandwidth)
        }
        var request = HTTPClientRequest(url: url.hasSuffix("/") ? "\(url)v1/batches" : "\(url)/v1/batches")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        if let token = u.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.headers.add(name: "Content-Length", value: "\(body.count)")
        request.body = .bytes(ByteBuffer(bytes: body))
        heartbeat.beat(within: u.timeout + .seconds(3))   // the client's read and connect timeouts
        do {
            let response = try await client.execute(request, timeout: .milliseconds(u.timeout.milliseconds))
            let status = Int(response.status.code)
            let text = String(buffer: try await response.body.collect(upTo: 64 * 1024))
            switch status {
            case 200..<300:
                return .committed
            case 401, 403:
                return .unauthorized(status: status, body: text)
            case 404, 405:
                return .endpointNotFound(status: status, body: text)
            case 413:
                return .tooLarge
            case 429:
                return .retry(after: retryAfter(response.headers.first(name: "Retry-After")), reason: "HTTP \(status) from \(url): \(text.prefix(200))",
                              failover: false)
            case 503:
                return .retry(after: retryAfter(response.headers.first(name: "Retry-After")), reason: "HTTP \(status) from \(url): \(text.prefix(200))",
                              failover: true)
            case 408:
                return .retry(after: nil, reason: "HTTP \(status) from \(url): \(text.prefix(200))", failover: false)
            case 500..<600:
                return .retry(after: nil, reason: "HTTP \(status) from \(url): \(text.prefix(200))", failover: true)
            case 400..<500:
                return .rejected(status: status, body: text)
            default:
                return .retry(after: nil, reason: "unexpected HTTP \(status) from \(url)", failover: false)
            }
        } catch {
            if let problem = UplinkTLSProblem.describe(error, uplink: u) { return .certificateProblem(problem) }
            return .retry(after: nil, reason: "POST \(url)/v1/batches failed: \(error)", failover: true)
        }
    }

    /// Sleeps, having told the heartbeat how long.
    private func pause(for duration: Duration) async throws {
        heartbeat.beat(within: duration)
        try await Task.sleep(for: duration)
    }

    /// `Retry-After` in seconds (the HTTP-date form is rare from our cloud; it falls back
    /// to the backoff). Capped at 5 minutes.
    private func retryAfter(_ value: String?) -> Duration? {
        guard let value, let seconds = Double(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 else { return nil }
        return .milliseconds(Int64(min(seconds, 300) * 1000))
    }
}

/// Which of `uplink.url`'s URLs the uplink sends to. A failure moves to the next one;
/// once every URL has failed in a row, ``failed()`` answers `nil` and the caller backs
/// off (then starts a new round at the URL it is on).
struct UplinkTarget {
    let urls: [String]
    private(set) var index = 0
    /// Failures in a row since the last success (or the last full round).
    private var failures = 0

    init(urls: [String]) {
        precondition(!urls.isEmpty, "uplink.url holds at least one URL (checked by the config)")
        self.urls = urls
    }

    var url: String { urls[index] }

    /// Moves to the next URL and returns it, or `nil` when all failed in this round.
    mutating func failed() -> String? {
        failures += 1
        guard urls.count > 1 else { return nil }
        index = (index + 1) % urls.count
        if failures >= urls.count {
            failures = 0
            return nil
        }
        return url
    }

    mutating func succeeded() {
        failures = 0
    }
}
