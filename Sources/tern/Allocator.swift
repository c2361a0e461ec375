import CJemalloc

/// The memory allocator this process runs on (jemalloc is linked into `tern`; see
/// Package.swift). Asking it for its version also keeps the linker from dropping the library.
enum Allocator {
    static var description: String {
        var version: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &version, &size, nil, 0) == 0, let version else { return "unknown" }
        return "jemalloc " + String(cString: version)
    }
}
