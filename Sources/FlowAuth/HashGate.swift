import FlowProtocol
import FlowCore

/// A global cap on password hashes running at once (SPEC §11): bcrypt is made to be slow, so
/// many different credentials arriving together must not put many hashes on the CPU.
///
/// `limit` hashes run; up to `queueLimit` more wait in line, each handed a slot in turn when one
/// frees, and refused when it has waited past `maxWait` by then. Past the line, a hash is
/// refused at once. A refusal is `RATE_LIMITED` for the caller. No timers: a slot is held only
/// for one hash, so a waiter hears within (its place in line ÷ `limit`) hash times.
final class HashGate: Sendable {
    private struct Waiter {
        let until: ContinuousClock.Instant
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var running = 0
        var line: [Waiter] = []
    }

    let limit: Int
    let queueLimit: Int
    let maxWait: Duration
    let metrics: GatewayMetrics
    private let state = Locked(State())

    init(limit: Int, queueLimit: Int, maxWait: Duration, metrics: GatewayMetrics = .disabled) {
        self.metrics = metrics
        self.limit = max(1, limit)
        self.queueLimit = max(0, queueLimit)
        self.maxWait = maxWait
    }

    /// Runs `hash` when a slot is free; nil when it was refused.
    func run<T: Sendable>(_ hash: () async -> T) async -> T? {
        guard await self.enter() else { return nil }
        defer { self.leave() }
        self.metrics.passwordHash()
        return await hash()
    }

    /// Hashes running now (for tests and metrics).
    var running: Int { self.state.withLock { $0.running } }

    private func enter() async -> Bool {
        let until = ContinuousClock.now + self.maxWait
        return await withCheckedContinuation { continuation in
            let admitted: Bool? = self.state.withLock { state in
                if state.running < self.limit {
                    state.running += 1
                    return true
                }
                guard state.line.count < self.queueLimit else { return false }
                state.line.append(Waiter(until: until, continuation: continuation))
                return nil
            }
            if let admitted { continuation.resume(returning: admitted) }
        }
    }

    /// Frees a slot: it goes to the first waiter still within its wait; the expired ones are refused.
    private func leave() {
        let now = ContinuousClock.now
        let (expired, next) = self.state.withLock { state -> ([Waiter], Waiter?) in
            var expired: [Waiter] = []
            while let first = state.line.first {
                state.line.removeFirst()
                if first.until >= now { return (expired, first) }
                expired.append(first)
            }
            state.running -= 1
            return (expired, nil)
        }
        for waiter in expired { waiter.continuation.resume(returning: false) }
        next?.continuation.resume(returning: true)
    }
}
