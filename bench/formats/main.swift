print("weir-bench-formats: not written yet")
