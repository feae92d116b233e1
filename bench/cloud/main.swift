print("weir-bench-cloud: not written yet")
