// tern-bench: benchmark programs that print numbers (built only with TERN_BENCH=1).
//
//   tern-bench store DIR N BATCH [sync|nosync]      group-commit write rate (see StoreBench)
//   tern-bench relay   --port P --pid PID …         1:1 pairs over WebSocket (see LoadTool)
//   tern-bench offline --port P --pid PID …         enqueue while offline, then drain
//   tern-bench fanout  --port P --pid PID …         one sender, a group of connected members
//   tern-bench idle    --port P --pid PID …         memory per idle connection
//   tern-bench populate DATA_DIR DEVICES PENDING     a large store for timing the ops tools
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "store":
    try await storeBenchmark(arguments)
case "relay", "offline", "fanout", "idle":
    try await LoadTool.main(arguments)
case "populate":
    try await populate(arguments)
default:
    FileHandle.standardError.write(Data("usage: tern-bench store|relay|offline|fanout|idle|populate …\n".utf8))
    exit(2)
}
