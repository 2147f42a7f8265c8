import FlowFuzzHarness
import FuzzDriver

// libFuzzer drives `FuzzHarness.envelope`: its driver is called from this executable's own main,
// since SwiftPM gives every executable a main of its own (see ../../README.md).
FuzzDriver.run { FuzzHarness.envelope($0) }
