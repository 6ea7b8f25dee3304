/// Names of a guest's memories ("heap", "stable", ...): they become path components and manifest keys.
public enum MemoryName {
    /// 1...255 bytes of UTF-8, no "/" and no NUL, not "." or "..".
    public static func isValid(_ name: String) -> Bool {
        let utf8 = name.utf8
        return (1...255).contains(utf8.count) && !utf8.contains(UInt8(ascii: "/")) && !utf8.contains(0)
            && name != "." && name != ".."
    }
}
