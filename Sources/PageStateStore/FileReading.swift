import SystemPackage

/// Opening and reading the files of a state directory, for every reader in the module.
enum FileReading {
    /// Opens `path` read-only; a missing file is `.missingFile`.
    static func open(_ path: FilePath) throws(StoreError) -> FileDescriptor {
        do { return try FileDescriptor.open(path, .readOnly, options: .closeOnExec) } catch Errno.noSuchFileOrDirectory {
            throw .missingFile(path: path.string)
        } catch { throw .system(operation: "open", path: path.string, error as? Errno ?? .ioError) }
    }

    /// `count` bytes from byte `offset` of `file`, continuing short reads.
    ///
    /// - Throws: `.malformedFile` when the file ends first (it shrank); `.system`.
    static func read(_ file: FileDescriptor, path: FilePath, at offset: UInt64, count: Int) throws(StoreError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let read = try system("read", path) {
                try bytes.withUnsafeMutableBytes {
                    try file.read(fromAbsoluteOffset: Int64(offset) + Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: $0[done...]))
                }
            }
            guard read > 0 else {
                throw .malformedFile(path: path.string, offset: offset + UInt64(done), reason: "file ends early (it shrank while being read)")
            }
            done += read
        }
        return bytes
    }
}
