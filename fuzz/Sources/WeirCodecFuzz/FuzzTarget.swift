import CFuzzDriver
import WeirCore

/// The executable's entry point (SwiftPM links `main` to `<target>_main`): hands control to
/// libFuzzer's driver with `fuzzBatchCodec` as the function under test.
@_cdecl("weir_codec_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return fuzzBatchCodec(UnsafePointer(bitPattern: 1)!, 0) }
        return fuzzBatchCodec(data, size)
    }
}

/// One fuzzer input (built with `-sanitize=fuzzer,address -parse-as-library`).
///
/// Each input is decoded three ways, so the fuzzer explores past the checksum:
/// as given (magic, version and CRC checks), with its trailing CRC repaired (the structure
/// checks behind it), and as a bare body wrapped in a valid header and CRC. Decoding must
/// return a batch or a `BatchCodecError` whose offset lies inside the input; a batch that
/// decodes must survive encode → decode unchanged. Anything else traps, which libFuzzer
/// reports with the input that caused it.
public func fuzzBatchCodec(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = [UInt8](UnsafeBufferPointer(start: data, count: size))
    check(input)
    if input.count >= 4 { check(withRepairedChecksum(input)) }
    check(withRepairedChecksum(BatchCodec.magic + [BatchCodec.version, 0] + input + [0, 0, 0, 0]))
    return 0
}

func withRepairedChecksum(_ bytes: [UInt8]) -> [UInt8] {
    var b = bytes
    let crc = b.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(b.count - 4)])) }
    for k in 0..<4 { b[b.count - 4 + k] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k))) }
    return b
}

func check(_ bytes: [UInt8]) {
    let batch: Batch
    var merger = BatchMerger()
    do {
        batch = try BatchCodec.decode(bytes)
    } catch {
        guard error.offset >= 0, error.offset <= bytes.count, !error.message.isEmpty else {
            fatalError("error outside the input: \(error) (input \(bytes.count) bytes)")
        }
        // The merger (which the edge uses to merge chunks) refuses what decode refuses,
        // and adds nothing of it.
        if (try? merger.add(bytes)) != nil { fatalError("the merger accepted a batch decode refuses") }
        guard merger.readingCount == 0 else { fatalError("a refused batch left readings in the merger") }
        return
    }
    // Merged alone and twice, a batch encodes to exactly what encoding its readings gives.
    do {
        try merger.add(bytes)
        guard merger.encode(gateway: "g", id: "m", drops: []) == BatchCodec.encode(Batch(gateway: "g", id: "m", readings: batch.readings)) else {
            fatalError("merging one batch changed its encoding (\(batch.readings.count) readings)")
        }
        try merger.add(bytes)
        guard merger.encode(gateway: "g", id: "m2", drops: []) == BatchCodec.encode(Batch(gateway: "g", id: "m2", readings: batch.readings + batch.readings)) else {
            fatalError("merging a batch twice differs from encoding its readings twice (\(batch.readings.count) readings)")
        }
    } catch {
        fatalError("the merger refused a batch decode accepts: \(error)")
    }
    let again: Batch
    do {
        again = try BatchCodec.decode(BatchCodec.encode(batch))
    } catch {
        fatalError("re-encoded batch does not decode: \(error)")
    }
    // Encoding groups readings by series (ascending), keeping their order within a series.
    let expected = batch.readings.indices
        .sorted { (batch.readings[$0].series, $0) < (batch.readings[$1].series, $1) }
        .map { batch.readings[$0] }
    guard again.gateway == batch.gateway, again.id == batch.id, again.drops == batch.drops,
          again.readings.count == expected.count,
          zip(again.readings, expected).allSatisfy({
              $0.device == $1.device && $0.metric == $1.metric && $0.ts == $1.ts
                  && $0.value.bitPattern == $1.value.bitPattern
          })
    else {
        fatalError("round trip changed the batch (\(batch.readings.count) readings)")
    }
}
