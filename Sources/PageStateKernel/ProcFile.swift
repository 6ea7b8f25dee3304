import SystemPackage

/// The whole text of a /proc or /sys file, read until `read` returns 0.
///
/// Such files report a size of 0 and their reads stop short at record boundaries (a seq file fills
/// at most a page per read), so a reader that stops at the first short read gets the first ~4 KiB
/// only — Foundation's `String(contentsOfFile:)` does, and a long /proc/self/maps or
/// /proc/PID/task/TID/children lost its later lines that way.
///
/// The corresponding C functions are `open`, `read` (retried on EINTR) and `close`.
public func readProcFile(_ path: FilePath) throws(Errno) -> String {
    do {
        let file = try FileDescriptor.open(path, .readOnly, options: .closeOnExec)
        defer { try? file.close() }
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try file.read(into: $0) }
            if count == 0 { return String(decoding: text, as: UTF8.self) }
            text += chunk[..<count]
        }
    } catch { throw error as? Errno ?? .ioError }
}
