// tern-bench: benchmark programs that print numbers (built only with TERN_BENCH=1).
//
//   tern-bench store DIR N BATCH [sync|nosync]      group-commit write rate (see StoreBench)
//   tern-bench relay   --port P --pid PID …         1:1 pairs over WebSocket (see LoadTool)
//   tern-bench offline --port P --pid PID …         enqueue while offline, then drain
//   tern-bench fanout  --port P --pid PID …         one sender, a group of connected members
//   tern-bench idle    --port P --pid PID …         memory per idle connection
//   tern-bench populate DATA_DIR DEVICES PENDING     a large store for timing the ops tools
//   tern-bench thumbs FILE N                         thumbnails in-process vs the ffmpeg command
//   tern-bench upload --port P FILE N                upload and ranged-download throughput
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "store":
    try await storeBenchmark(arguments)
case "relay", "offline", "fanout", "idle":
    try await LoadTool.main(arguments)
case "populate":
    try await populate(arguments)
case "thumbs":
    try thumbnailBenchmark(arguments)
case "upload":
    try await uploadBenchmark(arguments)
default:
    FileHandle.standardError.write(Data("usage: tern-bench store|relay|offline|fanout|idle|populate|thumbs|upload …\n".utf8))
    exit(2)
}
