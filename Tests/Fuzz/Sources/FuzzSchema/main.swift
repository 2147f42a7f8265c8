import FlowFuzzHarness
import FuzzDriver

// libFuzzer drives `FuzzHarness.schema`: its driver is called from this executable's own main,
// since SwiftPM gives every executable a main of its own (see ../../README.md).
FuzzDriver.run { FuzzHarness.schema($0) }
