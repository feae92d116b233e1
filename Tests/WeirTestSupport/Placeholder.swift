public enum WeirTestSupportPlaceholder {}
