/// Validation for decoders, which build many readings from one device: the device name is
/// checked once per payload instead of once per reading. The problems are the same as
/// `Reading.validate()` reports.
struct NameCheck {
    private var validDevice: String? = nil

    /// The first problem of a reading of `device` with `metric` and `value`, or `nil`.
    mutating func problem(device: String, metric: String, value: Double) -> ReadingProblem? {
        if device != validDevice {
            do { try Reading.validateName(device, field: "device") } catch { return error }
            validDevice = device
        }
        do { try Reading.validateName(metric, field: "metric") } catch { return error }
        guard value.isFinite else { return .nonFiniteValue(value) }
        return nil
    }

    /// The problem of a device name alone, or `nil`.
    mutating func problem(device: String) -> ReadingProblem? {
        if device == validDevice { return nil }
        do { try Reading.validateName(device, field: "device") } catch { return error }
        validDevice = device
        return nil
    }
}
