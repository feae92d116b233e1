extension FilterEngine {
    /// Makes `lastSlot` and `lastBlock` the reading's device; consecutive readings of one
    /// device (a payload's) reuse them without a lookup. `tick` counts the changes of
    /// device, and a device's last-seen tick moves with them: precise enough for choosing
    /// whom to evict.
    @inline(__always)
    func deviceBlock(_ bits: StringBits, of reading: UnsafePointer<Reading>) {
        // Same device as the last reading: the same stored bits (see `StringBits`).
        if lastBlock >= 0 && bits == lastDeviceBits { return }
        deviceBlockSlowly(bits, of: reading)
    }

    /// (The name is read through `reading` only when its bits are not enough: a short
    /// name needs no string at all, so none is retained.)
    func deviceBlockSlowly(_ bits: StringBits, of reading: UnsafePointer<Reading>) {
        let small = FilterEngine.hash(smallBits: bits)
        // `reading` stays valid for the whole of `judge(at:)`, which its caller keeps it alive for.
        // A long name may be another copy of the last device's: keep this copy, so the
        // payload's next readings compare equal by their bits.
        if small == nil && lastBlock >= 0 && reading.pointee.device == devices[lastSlot].name {
            lastDevice = reading.pointee.device
            lastDeviceBits = bits
            return
        }
        tick &+= 1
        let hash = small ?? FilterEngine.hash(reading.pointee.device)
        var position = findDevice(bits, hash: hash, of: reading)
        if position < 0 { position = addDevice(reading.pointee.device, hash: hash) }
        let entry = deviceIndex[position]
        // The stored name's bits: `devices` keeps that string alive, so the name needs
        // no retaining here (`lastDevice` is only for a long name's other copies).
        lastDeviceBits = entry.bits
        lastSlot = Int(entry.slot)
        lastBlock = entry.block
        store(tick, at: entry.block &+ BlockLayout.lastTouched)
        // The payload's first metric is most likely the device's first.
        nextGuess = int32(entry.block &+ BlockLayout.seriesCount) > 0 ? entry.block &+ seriesStart : -1
    }

    /// Adds the device `name` (evicting first if there are `maxDevices`); returns its
    /// position in the index.
    func addDevice(_ name: String, hash: UInt64) -> Int {
        if devices.count >= maxDevices { evictLeastRecentlySeen() }
        let slot = devices.count
        devices.append(DeviceState(name: name, block: newBlock()))
        insertDevice(slot, hash: hash)
        return indexPosition(of: slot, hash: hash)
    }

    /// A hash of the name's UTF-8 bytes, the same whichever way Swift stores the string.
    /// A name of up to 15 bytes is two words, zero-padded (`hash(short:_:count:)`): for
    /// a string stored in line those are its stored bits, so the usual name is hashed
    /// without reading its bytes one by one. Longer names go eight bytes at a time.
    @inline(__always)
    static func hash(_ name: String) -> UInt64 {
        if let h = hash(smallBits: StringBits(name)) { return h }
        return name.utf8.withContiguousStorageIfAvailable { hash(bytes: UnsafeRawBufferPointer($0)) }
            ?? Array(name.utf8).withUnsafeBytes { hash(bytes: $0) }
    }

    /// The hash of a string stored in line (a "small" string: its bytes in the two
    /// words, the count in the top byte's low half, bit 61 set), or nil for another.
    /// `FilterEngine.init` checks that this layout is the platform's.
    @inline(__always)
    static func hash(smallBits bits: StringBits) -> UInt64? {
        guard smallLayoutHolds, bits.b >> 61 & 1 == 1 else { return nil }
        return hash(short: bits.a, bits.b & 0x00FF_FFFF_FFFF_FFFF, count: Int(bits.b >> 56 & 0xF))
    }

    /// Whether `hash(smallBits:)` reads this Swift runtime's String layout right: a short
    /// name's bits hash like its bytes, a long name's are not taken for a short one.
    /// (`init` checks it once per engine.)
    static var smallStringLayoutHolds: Bool {
        let short = "weir-device-01", long = String(repeating: "device-", count: 6)
        return hash(smallBits: StringBits(short)) == Array(short.utf8).withUnsafeBytes({ hash(bytes: $0) })
            && hash(smallBits: StringBits(long)) == nil
    }

    /// Whether small strings are laid out as `hash(smallBits:)` reads them (64-bit little
    /// endian, as on every platform Weir builds for). Computed, not stored: a global
    /// would cost a lazy-initialisation check on every call.
    @inline(__always)
    static var smallLayoutHolds: Bool {
        #if _endian(little) && _pointerBitWidth(_64)
        return true
        #else
        return false
        #endif
    }

    @inline(__always)
    static func hash(short w0: UInt64, _ w1: UInt64, count: Int) -> UInt64 {
        mix((w0 &* 0x9E37_79B9_7F4A_7C15) ^ ((w1 ^ UInt64(count)) &* 0xC2B2_AE3D_27D4_EB4F).rotateLeft(31))
    }

    static func hash(bytes: UnsafeRawBufferPointer) -> UInt64 {
        let n = bytes.count
        if n <= 15 {
            var w0: UInt64 = 0, w1: UInt64 = 0
            for (i, byte) in bytes.enumerated() {
                if i < 8 { w0 |= UInt64(byte) << (8 * i) } else { w1 |= UInt64(byte) << (8 * (i - 8)) }
            }
            return hash(short: w0, w1, count: n)
        }
        let p = bytes.baseAddress! // n > 15
        // Safe: every load below reads 8 bytes at `i` with `i + 8 <= n`, and the last at
        // `n - 8 >= 8`.
        var h = 0x9E37_79B9_7F4A_7C15 &* UInt64(n)
        var i = 0
        while i + 8 <= n {
            h = (h ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 29
            i += 8
        }
        // The last (overlapping) word covers the tail.
        if i < n { h = (h ^ p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)) &* 0xC4CE_B9FE_1A85_EC53 }
        return mix(h)
    }

    /// MurmurHash3's 64-bit finaliser.
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var h = x
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }

    /// The position in `deviceIndex` of device `slot`, whose name hashes to `hash`.
    func indexPosition(of slot: Int, hash: UInt64) -> Int {
        let mask = deviceIndex.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while deviceIndex[i].slot != Int32(slot) { i = (i + 1) & mask }
        return i
    }

    /// The position in `deviceIndex` of the device of `reading` (whose name's bits are
    /// `bits`), or -1.
    @inline(__always)
    func findDevice(_ bits: StringBits, hash: UInt64, of reading: UnsafePointer<Reading>) -> Int {
        let mask = deviceIndex.count &- 1
        let tag = UInt32(truncatingIfNeeded: hash >> 32)
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = deviceIndex[i]
            if entry.slot < 0 { return -1 }
            if entry.tag == tag && (entry.bits == bits || devices[Int(entry.slot)].name == reading.pointee.device) {
                return i
            }
            i = (i &+ 1) & mask
        }
    }

    /// Adds `slot` to the index, growing it to stay at most half full.
    func insertDevice(_ slot: Int, hash: UInt64) {
        if (devices.count + 1) * 2 > deviceIndex.count {
            reindexDevices(capacity: deviceIndex.count * 2)
            return // reindexing covered `slot` (it is already in `devices`)
        }
        let mask = deviceIndex.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while deviceIndex[i].slot >= 0 { i = (i + 1) & mask }
        deviceIndex[i] = DeviceIndexEntry(slot: slot, device: devices[slot], hash: hash)
    }

    func reindexDevices(capacity: Int) {
        var size = 64
        while size < capacity { size *= 2 }
        deviceIndex.deallocate()
        deviceIndex = FlatBuffer(repeating: DeviceIndexEntry(), count: size)
        let mask = size - 1
        for slot in devices.indices {
            let hash = FilterEngine.hash(devices[slot].name)
            var i = Int(truncatingIfNeeded: hash) & mask
            while deviceIndex[i].slot >= 0 { i = (i + 1) & mask }
            deviceIndex[i] = DeviceIndexEntry(slot: slot, device: devices[slot], hash: hash)
        }
    }
}

extension FilterEngine {
    /// A device the engine keeps state for: its name (which keeps the bits in its index
    /// entry valid) and where its block is.
    struct DeviceState: Sendable {
        var name: String
        /// Where the device's block is in `FilterEngine.arena` (kept current in its index
        /// entry too).
        var block: Int
        /// Built once a device has many series (name → its record's offset in the block);
        /// comparing names one by one is faster below that.
        var lookup: [String: Int32]? = nil

        init(name: String, block: Int) {
            self.name = name
            self.block = block
        }
    }

    /// 32 bytes, so an entry never straddles two cache lines.
    struct DeviceIndexEntry: Sendable {
        /// The device's name as stored (`devices[slot].name` keeps it alive).
        var bits = StringBits()
        /// `devices[slot].block`.
        var block = -1
        var slot: Int32 = -1
        /// The high half of the name's hash: most entries that are not the name fail on it.
        var tag: UInt32 = 0

        init() {}

        init(slot: Int, device: DeviceState, hash: UInt64) {
            bits = StringBits(device.name)
            block = device.block
            self.slot = Int32(slot)
            tag = UInt32(truncatingIfNeeded: hash >> 32)
        }
    }
}

/// For the name hash.
private extension UInt64 {
    @inline(__always) func rotateLeft(_ k: UInt64) -> UInt64 { self << k | self >> (64 - k) }
}
