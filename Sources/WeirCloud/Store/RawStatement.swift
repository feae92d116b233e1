import GRDB
import GRDBSQLite
import WeirCore

/// A prepared statement driven through the sqlite3 C API, for the per-reading hot path:
/// GRDB's `StatementArguments` box every value, which costs more than the insert itself
/// at hundreds of thousands of readings per second. The statement comes from GRDB's
/// per-connection cache, so it is prepared once and finalized by GRDB.
///
/// Only valid inside the `Database` access it was made in.
struct RawStatement {
    let handle: OpaquePointer
    let connection: OpaquePointer?

    init(_ db: Database, sql: String) throws {
        let statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
        connection = db.sqliteConnection
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// SQLite's "copy this text now" destructor.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    @inline(__always) func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(handle, index, value)
    }

    @inline(__always) func bind(_ index: Int32, _ value: Int64?) {
        if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    @inline(__always) func bind(_ index: Int32, _ value: Double) {
        sqlite3_bind_double(handle, index, value)
    }

    func bind(_ index: Int32, _ value: String) {
        var copy = value
        copy.withUTF8 { buffer in
            _ = sqlite3_bind_text(handle, index, buffer.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                                  Int32(buffer.count), Self.transient)
        }
    }

    /// Runs a statement that returns no rows, then resets it.
    @inline(__always) func run() throws {
        let code = sqlite3_step(handle)
        sqlite3_reset(handle)
        guard code == SQLITE_DONE else { throw error(code) }
    }

    /// Steps once; true when a row is available (read it with `int64`/`double`), false when
    /// done. Call `reset()` afterwards.
    @inline(__always) func step() throws -> Bool {
        let code = sqlite3_step(handle)
        if code == SQLITE_ROW { return true }
        if code == SQLITE_DONE { return false }
        sqlite3_reset(handle)
        throw error(code)
    }

    @inline(__always) func reset() { sqlite3_reset(handle) }

    @inline(__always) func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    @inline(__always) func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }
    @inline(__always) func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    /// Rows changed by the last statement on this connection.
    @inline(__always) var changes: Int32 { sqlite3_changes(connection) }

    private func error(_ code: Int32) -> WeirError {
        let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? "code \(code)"
        return WeirError(.storage, "SQLite: \(message) (code \(code))")
    }
}
