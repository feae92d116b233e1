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
/// What to do with each answer — forward, split, reject, fail over, back off — is
/// ``UplinkStateMachine``'s decision (its doc comment lists the rules); this service does
/// the I/O it asks for: reads batches from the buffer, POSTs them, sleeps, writes the
/// outcome, the metrics and the logs. A chunk that does not decode is quarantined here,
/// when the batch is read, and the rest goes on.
struct UplinkService: Service {
    let configuration: EdgeConfiguration
    let buffer: EdgeBuffer
    let inFlight: InFlightChunks
    let metrics: EdgeMetrics
    /// Beaten before every request and wait with how long it may take, so the liveness
    /// monitor sees a loop that does not come back.
    let heartbeat: LoopHeartbeat
    let logger: Logger

    func run() async throws {
        // Our own client: a short connect timeout, so a cloud that is down shows up as a
        // failed attempt (and "retrying" in status) instead of a request waiting it out.
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(3), read: .milliseconds(configuration.uplink.timeout.milliseconds))
        // The files were checked when the config loaded.
        config.tlsConfiguration = try configuration.uplinkTLSConfiguration()
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        await cancelWhenGracefulShutdown {
            await self.loop(client)
        }
        try? await client.shutdown()
    }

    /// Does what the machine says until it says stop.
    private func loop(_ client: HTTPClient) async {
        let u = configuration.uplink
        var machine = UplinkStateMachine(urls: u.urls, backoff: Backoff(base: u.backoffBase, cap: u.backoffCap),
                                         idleWait: configuration.buffer.flushInterval)
        var pacer = BandwidthPacer(bytesPerSecond: u.bandwidth)
        try? buffer.setUplinkURL(machine.url)
        defer {
            inFlight.clear()
            heartbeat.stop()
        }
        var action = machine.start()
        while true {
            heartbeat.beat(within: .zero)
            if Task.isCancelled { action = machine.shutdown() }
            do {
                switch action {
                case .stop:
                    return
                case .prepareBatch(let outboxFirst):
                    let batch = try prepareBatch(outboxFirst: outboxFirst)
                    if let batch { inFlight.set(batch.seqs) }
                    action = machine.batchPrepared(batch)
                case .waitForChunks(let duration):
                    try await pause(for: duration)
                    action = machine.waited()
                case .send(let piece, let url):
                    let response = await post(piece, client: client, url: url, pacer: &pacer)
                    // A POST cut short by shutdown says nothing about the cloud; a commit
                    // that made it back is still recorded.
                    action = Task.isCancelled && response != .committed ? machine.shutdown() : machine.responseReceived(response)
                case .split(let piece):
                    do {
                        let pieces = try piece.split(gateway: configuration.gateway)
                        if pieces != nil {
                            logger.info("cloud said 413: splitting the batch", metadata: ["weir.batch": "\(piece.id)", "weir.readings": "\(piece.readingCount)"])
                        }
                        action = machine.splitFinished(pieces)
                    } catch {
                        action = machine.splitFailed("splitting batch \(piece.id) failed: \(error)")
                    }
                case .forwardPieces(let pieces, let batch):
                    try forwardCommitted(pieces, of: batch)
                    action = machine.recorded()
                case .forward(let batch, let leaving):
                    try forward(batch, leaving: leaving)
                    action = machine.recorded()
                case .reject(let piece, let rejection):
                    try reject(piece, rejection)
                    action = machine.recorded()
                case .failOver(let url, let reason):
                    metrics.retries.increment()
                    logger.warning("uplink moving to the next URL", metadata: ["weir.error": "\(reason)", "weir.url": "\(url)"])
                    try? buffer.setUplinkURL(url)
                    try? buffer.setUplinkState(.failingOver, error: reason)
                    action = machine.recorded()
                case .backOff(let problem, let delay, let report):
                    await note(problem, report: report)
                    switch delay {
                    case .retryAfter(let duration): try await pause(for: duration)
                    case .backoff(let ceiling): try await pause(for: Backoff.jittered(upTo: ceiling))
                    }
                    action = machine.waited()
                }
            } catch is CancellationError {
                action = machine.shutdown()
            } catch {
                // The buffer file misbehaved (disk full, I/O error): keep the chunks, try again.
                logger.error("uplink step failed; retrying", metadata: ["weir.error": "\(error)"])
                action = machine.bufferFailed("\(error)")
            }
        }
    }

    // MARK: Buffer

    /// Reads the next chunks (in replay order; `outboxFirst`: the batch that was in
    /// flight when the edge stopped, so its drop rows reach the cloud under the same id)
    /// and the pending drop rows; quarantines chunks that fail to decode.
    private func prepareBatch(outboxFirst: Bool) throws -> UplinkBatch? {
        let u = configuration.uplink
        let outbox = outboxFirst ? try buffer.outbox() : nil
        let chunks = try inFlight.withLock { sending in
            let next = try outbox?.chunks
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
        let drops = try outbox.map { $0.drops } ?? buffer.pendingDrops(limit: 10_000)
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

    /// The cloud committed `batch`: its chunks and drop rows go.
    private func forward(_ batch: UplinkBatch, leaving: UplinkState?) throws {
        try buffer.markForwarded(seqs: batch.seqs, dropIDs: batch.drops.map(\.id), readings: batch.readingCount)
        metrics.forwardedReadings.increment(by: Int64(batch.readingCount))
        metrics.forwardedBatches.increment()
        metrics.unauthorized.record(0)
        metrics.uplinkUp.record(1)
        logger.debug("batch committed", metadata: ["weir.batch": "\(batch.id)", "weir.readings": "\(batch.readingCount)"])
        if let leaving {
            if leaving != .idle { logger.info("uplink recovered", metadata: ["weir.batch": "\(batch.id)"]) }
            try? buffer.setUplinkState(.ok, error: nil)
        }
        inFlight.clear()
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

    /// Moves `piece`'s chunks to the rejected table with the reason, never to be resent.
    private func reject(_ piece: UplinkBatch, _ rejection: UplinkStateMachine.Rejection) throws {
        switch rejection {
        case .refused(let status, let body):
            logger.error("cloud rejected a batch for good; its chunks moved to the rejected table",
                         metadata: ["weir.batch": "\(piece.id)", "weir.status": "\(status)", "weir.response": "\(body.prefix(300))"])
            try buffer.reject(seqs: piece.seqs, dropIDs: piece.drops.map(\.id), batch: piece.id, status: status, response: body)
            metrics.rejected.increment(by: Int64(piece.seqs.count))
            // The cloud answered, so the link is fine; the rejection is the last error.
            try? buffer.setUplinkState(.ok, error: "batch \(piece.id) rejected with \(status): \(body.prefix(300))")
        case .tooLarge:
            logger.error("a single reading is over the cloud's body cap; its chunk moved to the rejected table",
                         metadata: ["weir.batch": "\(piece.id)"])
            try buffer.reject(seqs: piece.seqs, dropIDs: piece.drops.map(\.id), batch: piece.id, status: 413,
                              response: "too large even as a single reading")
            metrics.rejected.increment(by: Int64(piece.seqs.count))
        }
        inFlight.clear()
    }

    /// Counts a back-off and, when `report`, logs it and records it for `status`.
    private func note(_ problem: UplinkStateMachine.Problem, report: Bool) async {
        switch problem {
        case .unauthorized(let status, let body):
            metrics.unauthorized.record(1)
            metrics.retries.increment()
            guard report else { return }
            logger.error("uplink unauthorized: the cloud refused the gateway token (\(status)); keeping every chunk and retrying",
                         metadata: ["weir.response": "\(body.prefix(200))"])
            try? buffer.setUplinkState(.unauthorized, error: "uplink unauthorized (HTTP \(status)): \(body.prefix(200))")
        case .certificateProblem(let problem):
            metrics.retries.increment()
            metrics.uplinkUp.record(0)
            guard report else { return }
            var text = problem.message
            // Once per episode: which of unknown CA, expired or not yet valid it is.
            if problem.code == .untrustedCertificate,
               let why = await CloudCertificateDiagnosis.explain(url: configuration.uplink.url, caFile: configuration.uplink.caFile) {
                text = "uplink certificate problem: \(why)"
            }
            logger.error("\(text); keeping every chunk and retrying")
            try? buffer.setUplinkState(.certificateProblem, error: text)
        case .endpointNotFound(let status, let body, let url):
            metrics.retries.increment()
            metrics.uplinkUp.record(0)
            guard report else { return }
            logger.error("uplink endpoint not found: \(url) answered \(status) to POST /v1/batches; check uplink.url. Keeping every chunk and retrying",
                         metadata: ["weir.response": "\(body.prefix(200))"])
            try? buffer.setUplinkState(.endpointNotFound,
                                       error: "uplink endpoint not found (HTTP \(status) from \(url)/v1/batches; check uplink.url): \(body.prefix(200))")
        case .retrying(let reason):
            metrics.retries.increment()
            metrics.uplinkUp.record(0)
            guard report else { return }
            logger.warning("uplink failing; retrying with backoff", metadata: ["weir.error": "\(reason)"])
            try? buffer.setUplinkState(.retrying, error: reason)
        case .buffer(let message):
            try? buffer.setUplinkState(.error, error: message)
        }
    }

    // MARK: Network

    /// One POST of `piece`; never throws: a failure is an answer too.
    private func post(_ piece: UplinkBatch, client: HTTPClient, url: String, pacer: inout BandwidthPacer) async -> UplinkResponse {
        let u = configuration.uplink
        let body: [UInt8]
        let contentType: String
        do {
            switch u.format {
            case .binary:
                body = try piece.wire(gateway: configuration.gateway)
                contentType = "application/vnd.weir.batch"
            case .json:
                body = try piece.batch(gateway: configuration.gateway).jsonBytes()
                contentType = "application/json"
            }
        } catch {
            return .notSent(reason: "encoding batch \(piece.id) failed: \(error)")
        }
        let now = ContinuousClock.now
        if let sendAt = pacer.reserve(bytes: body.count, now: now) {
            heartbeat.beat(within: sendAt - now)
            try? await Task.sleep(until: sendAt)
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
            let text = String(buffer: try await response.body.collect(upTo: 64 * 1024))
            return UplinkResponse(status: Int(response.status.code), retryAfter: response.headers.first(name: "Retry-After"), body: text)
        } catch {
            if let problem = UplinkTLSProblem(error, uplink: u) { return .certificateProblem(problem) }
            return .unreachable(reason: "POST \(url)/v1/batches failed: \(error)")
        }
    }

    /// Sleeps, having told the heartbeat how long.
    private func pause(for duration: Duration) async throws {
        heartbeat.beat(within: duration)
        try await Task.sleep(for: duration)
    }
}
