/// Failed logins per key (a username or a client address) in a sliding window (SPEC §9.6, §11).
/// A value type with the time passed in, so it is tested without a clock.
///
/// An attempt counts from the moment it is admitted, not from when its slow hash says it
/// failed: ``admit(_:now:)`` reserves a place for it against the limit, and ``finish(_:failed:now:)``
/// turns that place into a failure or frees it. A burst of concurrent wrong passwords therefore
/// gets at most `limit` guesses in, however many arrive at once.
struct LoginLimiter: Sendable {
    /// Failures (and attempts in flight) allowed per key within `window`.
    let limit: Int
    /// Seconds.
    let window: Double
    /// Keys kept at most; past that the oldest windows are dropped first.
    let capacity: Int
    private var failures: [String: [Double]] = [:]
    private var inFlight: [String: Int] = [:]

    init(limit: Int, window: Double = 60, capacity: Int = 100_000) {
        self.limit = limit
        self.window = window
        self.capacity = capacity
    }

    /// Admits an attempt for `keys` unless one of them is at the limit (failures in the window
    /// plus attempts in flight); an admitted attempt must be finished.
    mutating func admit(_ keys: [String], now: Double) -> Bool {
        let limited = keys.contains { key in
            (self.failures[key]?.count { $0 > now - self.window } ?? 0) + (self.inFlight[key] ?? 0) >= self.limit
        }
        guard !limited else { return false }
        for key in keys { self.inFlight[key, default: 0] += 1 }
        return true
    }

    /// Ends an admitted attempt: a failure counts against each key from now.
    mutating func finish(_ keys: [String], failed: Bool, now: Double) {
        for key in keys {
            let remaining = (self.inFlight[key] ?? 1) - 1
            self.inFlight[key] = remaining > 0 ? remaining : nil
        }
        if failed { self.recordFailure(keys, now: now) }
    }

    /// Whether any of `keys` is at the limit at `now`.
    func isLimited(_ keys: [String], now: Double) -> Bool {
        var copy = self
        return !copy.admit(keys, now: now)
    }

    /// Counts a failure for each of `keys`.
    mutating func recordFailure(_ keys: [String], now: Double) {
        if self.failures.count >= self.capacity { self.prune(now: now) }
        for key in keys {
            var times = self.failures[key] ?? []
            times.removeAll { $0 <= now - self.window }
            times.append(now)
            self.failures[key] = times
        }
    }

    /// How many keys are tracked (for tests).
    var trackedKeys: Int { self.failures.count }

    private mutating func prune(now: Double) {
        self.failures = self.failures.compactMapValues { times in
            let recent = times.filter { $0 > now - self.window }
            return recent.isEmpty ? nil : recent
        }
        // Still full (an attack from many keys): forget the half with the oldest last failure.
        if self.failures.count >= self.capacity {
            let keep = self.failures.sorted { ($0.value.last ?? 0) > ($1.value.last ?? 0) }.prefix(self.capacity / 2)
            self.failures = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }
}
