#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Synchronization

/// `Synchronization.Mutex`, as ThreadSanitizer can see it.
///
/// On Linux the standard library's `Mutex` locks in code that is not built for ThreadSanitizer,
/// so TSan sees no ordering between two `withLock` bodies and reports every lock-protected
/// access as a race (a six-line program shows it). `Locked` tells TSan about the lock through
/// its annotation interface (`__tsan_acquire`/`__tsan_release`, looked up once; absent outside
/// a TSan build, where the check is a load and a branch), so `scripts/sanitize` reports only
/// real races. Everything else is `Mutex`: use it the same way.
///
/// ```swift
/// private let state = Locked(State())
/// let count = self.state.withLock { $0.entries.count }
/// ```
///
/// Keep a closure in a struct, never bare (`Locked<Box?>`, not `Locked<((T) -> U)?>`): through
/// the generic `inout`, Swift 6.3 wraps a bare function value in one more reabstraction thunk at
/// every `withLock`, so each call through it got slower than the last (20,000 reads: 1 s, then
/// 4 s, then 9 s; boxed, 0.2 ms). The change-log receiver had it, and CREATE slowed with every
/// write. `LockedClosureTests` holds the sources to this.
public struct Locked<Value: ~Copyable>: ~Copyable {
    private let mutex: Mutex<Value>
    /// The address TSan's annotations name this lock by.
    private let token = ThreadSanitizer.Token()

    public init(_ initialValue: consuming sending Value) {
        self.mutex = Mutex(initialValue)
    }

    /// Runs `body` with the value, holding the lock.
    public borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        try self.mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
            ThreadSanitizer.acquire(self.token)
            defer { ThreadSanitizer.release(self.token) }
            return try body(&value)
        }
    }
}

extension Locked: Sendable where Value: ~Copyable {}

/// ThreadSanitizer's annotations, when the process has its runtime.
enum ThreadSanitizer {
    final class Token: Sendable {}

    private typealias Annotation = @convention(c) (UnsafeRawPointer?) -> Void
    private static let acquireFunction: Annotation? = Self.lookUp("__tsan_acquire")
    private static let releaseFunction: Annotation? = Self.lookUp("__tsan_release")

    private static func lookUp(_ name: String) -> Annotation? {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(symbol, to: Annotation.self)
        #else
        return nil
        #endif
    }

    @inline(__always)
    static func acquire(_ token: Token) {
        if let acquire = Self.acquireFunction { acquire(UnsafeRawPointer(Unmanaged.passUnretained(token).toOpaque())) }
    }

    @inline(__always)
    static func release(_ token: Token) {
        if let release = Self.releaseFunction { release(UnsafeRawPointer(Unmanaged.passUnretained(token).toOpaque())) }
    }
}
