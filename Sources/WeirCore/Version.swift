public enum WeirCoreVersion { public static let string = "0.1.0" }
