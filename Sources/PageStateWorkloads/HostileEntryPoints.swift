import CPageState
@_spi(HostileGuests) import PageStateSandbox

#if canImport(Glibc)
import Glibc
#endif

/// Entry points that behave like a guest that escaped its language runtime, for the hostile-guest
/// tests: each tries one thing a compromised worker might, and the tests check it is contained.
/// Registered by the default worker under `hostile.*`; never part of a real workload.
public enum HostileEntryPoints {
    public static func register(in runtime: inout WorkerRuntime) {
        runtime.register("hostile.open") { _ in
            [UInt8(truncatingIfNeeded: ps_raw_syscall(Int(PS_SYS_OPENAT), Int(AT_FDCWD), Int(bitPattern: path("/etc/hostname")), Int(O_RDONLY), 0))]
        }
        runtime.register("hostile.socket") { _ in
            result(ps_raw_syscall(Int(PS_SYS_SOCKET), Int(AF_INET), Int(SOCK_STREAM.rawValue), 0, 0))
        }
        runtime.register("hostile.execve") { _ in
            result(ps_raw_syscall(Int(PS_SYS_EXECVE), Int(bitPattern: path("/bin/true")), 0, 0, 0))
        }
        runtime.register("hostile.fork") { _ in
            result(ps_raw_syscall(Int(PS_SYS_CLONE), Int(SIGCHLD), 0, 0, 0))
        }
        runtime.register("hostile.userfaultfd") { _ in  // a new context, to stall the kernel mid-copy
            result(ps_raw_syscall(Int(PS_SYS_USERFAULTFD), Int(O_CLOEXEC), 0, 0, 0))
        }
        runtime.register("hostile.ptrace") { context in
            result(ps_raw_syscall(Int(PS_SYS_PTRACE), 16 /* PTRACE_ATTACH */, Int(decimal(context.input)), 0, 0))
        }
        runtime.register("hostile.kill") { context in  // input: the pid to kill (the host, the launcher)
            result(ps_raw_syscall(Int(PS_SYS_KILL), Int(decimal(context.input)), Int(SIGKILL), 0, 0))
        }
        runtime.register("hostile.map-executable") { _ in  // code of its own, e.g. to replace the SIGSYS reporter's
            result(Int(bitPattern: mmap(nil, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)))
        }
        runtime.register("hostile.make-executable") { _ in  // write code, then make it executable
            guard let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), page != MAP_FAILED else { return [] }
            page.storeBytes(of: 0xC3, as: UInt8.self)  // x86-64 `ret`: never run
            return result(Int(mprotect(page, 4096, PROT_READ | PROT_EXEC)))
        }
        runtime.register("hostile.move-mapping") { _ in  // a page moved onto a chosen address (the reporter's code, say)
            guard let pages = mmap(nil, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), pages != MAP_FAILED else { return [] }
            // mremap is variadic in C: the raw call (the filter stops it on its flags, before the
            // fifth argument, the new address, would be read).
            return result(ps_raw_syscall(Int(PS_SYS_MREMAP), Int(bitPattern: pages), 4096, 4096, Int(PS_MREMAP_MAYMOVE | PS_MREMAP_FIXED)))
        }
        runtime.register("hostile.sigsys-handler") { _ in  // replace the reporter: SIGSYS with a high bit the kernel drops
            var action = [UInt64](repeating: 0, count: 4)  // the kernel's sigaction: SIG_DFL, no flags
            return result(action.withUnsafeMutableBytes { ps_raw_syscall(Int(PS_SYS_RT_SIGACTION), (1 << 32) | Int(SIGSYS), Int(bitPattern: $0.baseAddress), 0, 8) })
        }
        runtime.register("hostile.truncate") { _ in
            for descriptor in 0..<64 { _ = ps_raw_syscall(Int(PS_SYS_FTRUNCATE), descriptor, 0, 0, 0) }
            return []
        }
        runtime.register("hostile.write-descriptors", writeDescriptors)
        runtime.register("hostile.write-past-bounds") { context in
            let end = context.heap.unsafeBytes.baseAddress! + Int(context.heap.capacityInPages) * 4096
            end.storeBytes(of: 0xAA, as: UInt8.self)
            return []
        }
        runtime.register("hostile.loop") { context in
            var x: UInt64 = 1
            while x != 0 { x = x &* 6364136223846793005 &+ 1442695040888963407 | 1 }
            return [UInt8(truncatingIfNeeded: x)]
        }
        runtime.register("hostile.allocate") { _ in
            var hoard: [UnsafeMutableRawPointer] = []
            while true {
                guard let block = malloc(64 << 20) else { abort() }
                memset(block, 1, 64 << 20)
                hoard.append(block)
            }
        }
        runtime.register("hostile.exhaust-descriptors") { context in
            while ps_memfd_create("hoard", 0) >= 0 {}
            if context.heap.sizeInPages == 0 { try context.heap.grow(byPages: 1) }
            try context.heap.store(UInt64(0xDEAD), at: 0)  // the result file can no longer be written
            return []
        }
        runtime.register("hostile.segfault") { _ in
            UnsafeMutableRawPointer(bitPattern: 8)!.storeBytes(of: 1, as: UInt8.self)
            return []
        }
        runtime.register("hostile.abort") { _ in abort() }
        runtime.register("hostile.foreign-pages") { context in  // an update that reports its page beyond its result file
            if context.heap.sizeInPages == 0 { try context.heap.grow(byPages: 1) }
            try context.heap.store(UInt64(0xBAD), at: 0)
            context.reportedOffsetShift = 1 << 40
            return []
        }
        runtime.register("hostile.malformed-result") { _ in
            let garbage: [UInt8] = [0x50, 0x53, 0x57, 0x4B, 11, 0, 0, 0, 1, 2, 3]  // "PSWK", result, truncated body
            _ = garbage.withUnsafeBytes { write(3, $0.baseAddress, $0.count) }
            while true { sched_yield() }
        }
        runtime.register("hostile.oversized-result") { context in
            [UInt8](repeating: 7, count: Int(decimal(context.input)))
        }
    }

    /// Tries to write to and map writable every descriptor the worker holds. Output: how many
    /// attempts succeeded on files other than the worker's own (none may).
    static func writeDescriptors(_ context: ExecutionContext) throws -> [UInt8] {
        var succeeded: UInt64 = 0
        var byte: UInt8 = 0x5A
        for descriptor in Int32(4)..<256 {
            let mapped = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0)
            if let mapped, mapped != MAP_FAILED {
                // Writable shared mappings exist only of the worker's own scratch memfd.
                munmap(mapped, 4096)
                succeeded += 1
            }
            if pwrite(descriptor, &byte, 1, 0) == 1 { succeeded += 1 }
        }
        return DemoEntryPoints.bytes(of: succeeded)
    }

    private static func path(_ string: StaticString) -> UnsafePointer<UInt8> { string.utf8Start }

    private static func result(_ value: Int) -> [UInt8] { DemoEntryPoints.bytes(of: UInt64(bitPattern: Int64(value))) }

    private static func decimal(_ input: [UInt8]) -> Int64 { Int64(String(decoding: input, as: UTF8.self)) ?? 0 }
}
