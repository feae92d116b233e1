extension FilterEngine {
    /// A string's 16 bytes as Swift stores them: the characters themselves for a short
    /// string (up to 15 UTF-8 bytes, the names devices usually have), else a reference to
    /// its storage. Equal bits mean equal strings as long as the string the stored bits came
    /// from is alive (the engine keeps each: device names in `devices`, metric names in
    /// `series`), since a live storage object is never reused; different bits mean nothing
    /// (two copies of a long name), so a full comparison follows. Comparing two words is
    /// what makes the usual lookup cheap: `String ==` calls into the runtime whenever the
    /// strings differ.
    struct StringBits: Sendable, Equatable {
        var a: UInt64 = 0
        var b: UInt64 = 0

        init() {}

        @inline(__always) init(_ string: String) {
            // Safe: `unsafeBitCast` traps unless String is exactly these 16 bytes, and the
            // bits are only compared, never made a String again, so no reference is owed.
            (a, b) = unsafeBitCast(string, to: (UInt64, UInt64).self)
        }
    }
}
