/// A growable array of plain values in memory its owner allocates and frees by hand, for
/// the filters' per-reading state.
///
/// Why not `Array`: every write into an array held by a class or a `mutating` method
/// costs a uniqueness check (a runtime call) and a bounds check, and the filter chain
/// writes several state records per reading. A `FlatBuffer` is a pointer, a count and a
/// capacity: reads and writes are plain loads and stores.
///
/// The rules that make that safe, which `FilterEngine` (its only owner) keeps:
/// - it is a value holding a pointer, so a copy shares the memory: exactly one owner
///   calls `deallocate()` (in its `deinit`), and `copy()` makes an independent buffer;
/// - indices are checked by `checkBounds` only: in debug builds (where the tests run) and
///   in builds that define `WEIR_CHECKED_BUFFERS` (the fuzzer's), not in release builds;
/// - `Element` is a plain value (no references: checked when a buffer is made), so
///   nothing needs deinitialising and memory may be copied bit for bit. (Not spelled
///   `BitwiseCopyable`, which public types such as `WindowAggregate` do not declare.)
///
/// ```swift
/// var b = FlatBuffer<Int64>()
/// b.append(7)
/// b[0] += 1 // 8
/// b.deallocate()
/// ```
struct FlatBuffer<Element> {
    private(set) var base: UnsafeMutablePointer<Element>
    private(set) var count = 0
    private(set) var capacity: Int

    /// An empty buffer with room for `capacity` elements.
    init(capacity: Int = 16) {
        precondition(_isPOD(Element.self), "FlatBuffer holds plain values only, not \(Element.self)")
        self.capacity = Swift.max(1, capacity)
        base = .allocate(capacity: self.capacity)
    }

    /// `count` copies of `value`.
    init(repeating value: Element, count: Int) {
        self.init(capacity: count)
        base.initialize(repeating: value, count: count)
        self.count = count
    }

    /// The element at `i` (`0 ..< count`). Setting it writes through the pointer, so it
    /// works on a `let` buffer too.
    subscript(i: Int) -> Element {
        @inline(__always) get {
            checkBounds(i >= 0 && i < count, "FlatBuffer index \(i) out of 0..<\(count)")
            return base[i] // Safe: the owner indexes below `count` (checked above in debug and fuzz builds).
        }
        @inline(__always) nonmutating set {
            checkBounds(i >= 0 && i < count, "FlatBuffer index \(i) out of 0..<\(count)")
            base[i] = newValue // Safe: as for the getter.
        }
    }

    var indices: Range<Int> { 0..<count }

    mutating func append(_ value: Element) {
        if count == capacity { grow(to: count + 1) }
        (base + count).initialize(to: value)
        count += 1
    }

    /// Appends `n` copies of `value`.
    mutating func append(repeating value: Element, count n: Int) {
        if count + n > capacity { grow(to: count + n) }
        (base + count).initialize(repeating: value, count: n)
        count += n
    }

    /// Makes room for at least `minimum` elements in all.
    mutating func reserveCapacity(_ minimum: Int) {
        if minimum > capacity { grow(to: minimum) }
    }

    /// An independent buffer with the same elements.
    func copy() -> FlatBuffer<Element> {
        var out = FlatBuffer(capacity: capacity)
        out.base.initialize(from: base, count: count)
        out.count = count
        return out
    }

    /// Frees the memory; the buffer (and every copy of it) must not be used afterwards.
    func deallocate() { base.deallocate() }

    private mutating func grow(to minimum: Int) {
        var newCapacity = capacity * 2
        while newCapacity < minimum { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        newBase.initialize(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }
}

/// The bounds check of the filters' unchecked state (`FlatBuffer` indices, offsets into
/// `FilterEngine`'s arena): an `assert`, so it runs in debug builds (the tests) and costs
/// nothing in release builds, unless the build defines `WEIR_CHECKED_BUFFERS` — the
/// fuzzer's build (`fuzz/run`) does — which makes it a `precondition`, so a stray offset
/// stops the program at once instead of reading or writing a neighbour's state that
/// AddressSanitizer cannot tell from a valid access.
@inline(__always)
func checkBounds(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                 file: StaticString = #file, line: UInt = #line) {
    #if WEIR_CHECKED_BUFFERS
    precondition(condition(), message(), file: file, line: line)
    #else
    assert(condition(), message(), file: file, line: line)
    #endif
}
