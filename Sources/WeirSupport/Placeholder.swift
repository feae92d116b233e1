// WeirSupport
