import Foundation
import PageStateKernel
import SystemPackage

/// The layout of a state directory (design/state-manager.md):
///
///     DIR/LOCK                       held (a record lock) by the one manager using the directory
///     DIR/checkpoints/<height>/      complete checkpoints: STATE, MANIFEST, <id>.ovl (hard links)
///     DIR/tip/<id>.ovl               overlays flushed since the last checkpoint
///     DIR/scratch/                   checkpoints being built and checkpoints being deleted
///
/// Heights are 20 decimal digits, overlay ids 16 hexadecimal digits, so names sort like numbers.
struct StateDirectory: Sendable {
    let root: FilePath
    var checkpoints: FilePath { root.appending("checkpoints") }
    var tip: FilePath { root.appending("tip") }
    var scratch: FilePath { root.appending("scratch") }
    var lock: FilePath { root.appending("LOCK") }

    func checkpoint(_ height: Height) -> FilePath { checkpoints.appending(Self.name(of: height)) }

    static func name(of height: Height) -> String {
        let digits = String(height)
        return String(repeating: "0", count: 20 - digits.count) + digits
    }

    static func height(fromName name: String) -> Height? {
        guard name.utf8.count == 20, name.utf8.allSatisfy({ (48...57).contains($0) }) else { return nil }
        return Height(name)
    }

    static func overlayName(_ id: UInt64) -> String {
        let digits = String(id, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits + ".ovl"
    }

    static func overlayID(fromName name: String) -> UInt64? {
        guard name.hasSuffix(".ovl"), name.utf8.count == 20 else { return nil }
        let hex = name.dropLast(4)
        guard hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return UInt64(hex, radix: 16)
    }

    /// Creates the directory and its parts where missing.
    func create() throws(StoreError) {
        for path in [root, checkpoints, tip, scratch] {
            do { try makeDirectory(path) } catch Errno.fileExists {} catch {
                throw .system(operation: "mkdir", path: path.string, error)
            }
        }
    }

    /// The names in `directory`, sorted.
    func entries(of directory: FilePath) throws(StoreError) -> [String] {
        try system("list", directory) { try FileManager.default.contentsOfDirectory(atPath: directory.string).sorted() }
    }

    /// Complete checkpoints, ascending.
    func checkpointHeights() throws(StoreError) -> [Height] {
        try entries(of: checkpoints).compactMap(Self.height(fromName:)).sorted()
    }

    /// Removes `path` and everything below it.
    func removeTree(_ path: FilePath) throws(StoreError) {
        try system("remove", path) { try FileManager.default.removeItem(atPath: path.string) }
    }

    /// Makes a file's data durable: the overlay and STATE writes, and directory entries.
    func sync(_ path: FilePath, writer: any FileWriter) throws(StoreError) {
        let descriptor = try system("open", path) { try FileDescriptor.open(path, .readOnly, options: .closeOnExec) }
        defer { try? descriptor.close() }
        try system("fsync", path) { try writer.sync(descriptor) }
    }

    /// Reads a whole (small) file.
    func read(_ path: FilePath) throws(StoreError) -> [UInt8] {
        let descriptor = try FileReading.open(path)
        defer { try? descriptor.close() }
        let size = try system("stat", path) { Int(try descriptor.stat().size) }
        return try FileReading.read(descriptor, path: path, at: 0, count: size)
    }

    /// Writes a new file (never replacing one) and syncs it.
    func writeNew(_ path: FilePath, bytes: [UInt8], writer: any FileWriter) throws(StoreError) {
        let descriptor = try system("create", path) {
            try FileDescriptor.open(path, .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec],
                                    permissions: [.ownerReadWrite, .groupRead, .otherRead])
        }
        defer { try? descriptor.close() }
        try bytes.withBytes { (buffer) throws(StoreError) in
            try system("write", path) { try writer.write([WriteSegment(offset: 0, bytes: buffer)], to: descriptor, sync: true) }
        }
    }
}
