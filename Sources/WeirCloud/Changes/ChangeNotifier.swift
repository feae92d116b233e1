import Synchronization

/// Wakes long-polling changefeed readers when the writer commits new changes.
///
/// The writer calls ``advance(to:)`` after each commit with the newest cursor; a reader
/// awaits ``wait(after:timeout:)``. Waiters are continuations kept under a `Mutex`; a
/// cancelled or timed-out waiter removes itself, so none is resumed twice or leaked.
final class ChangeNotifier: Sendable {
    private struct State {
        var latest: Int64 = 0
        var nextID: UInt64 = 0
        var waiters: [UInt64: (after: Int64, continuation: CheckedContinuation<Void, Never>)] = [:]
        /// Waiters cancelled before they registered.
        var cancelled: Set<UInt64> = []
    }

    private let state = Mutex(State())

    /// The newest committed cursor.
    var latest: Int64 { state.withLock { $0.latest } }

    /// Records that changes up to `cursor` are committed and wakes the waiters they satisfy.
    func advance(to cursor: Int64) {
        let ready: [CheckedContinuation<Void, Never>] = state.withLock { state in
            guard cursor > state.latest else { return [] }
            state.latest = cursor
            var ready: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in state.waiters where waiter.after < cursor {
                ready.append(waiter.continuation)
                state.waiters[id] = nil
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns when a cursor > `after` is committed, after `timeout`, or on cancellation.
    func wait(after: Int64, timeout: Duration) async {
        if latest > after { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForCommit(after: after) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForCommit(after: Int64) async {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.latest > after || state.cancelled.remove(id) != nil { return true }
                    state.waiters[id] = (after, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                if let waiter = state.waiters.removeValue(forKey: id) { return Optional(waiter.continuation) }
                state.cancelled.insert(id)
                return nil
            }
            waiter?.resume()
        }
        // A waiter that finished normally leaves no trace in `cancelled`.
        state.withLock { _ = $0.cancelled.remove(id) }
    }
}
