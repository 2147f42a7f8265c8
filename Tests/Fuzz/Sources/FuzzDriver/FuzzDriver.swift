import CLibFuzzer
import Glibc

/// Runs libFuzzer on one harness from an executable's own main: SwiftPM gives every executable
/// a main, so libFuzzer's (which would call `LLVMFuzzerTestOneInput`) is never linked in, and its
/// driver is called instead with the same command line.
public enum FuzzDriver {
    /// The harness of this process; libFuzzer's callback is a C function and cannot capture it.
    nonisolated(unsafe) static var harness: ([UInt8]) -> Void = { _ in }

    public static func run(_ harness: @escaping ([UInt8]) -> Void) -> Never {
        Self.harness = harness
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            FuzzDriver.harness(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        }
        exit(status)
    }
}
