print("weir-bench-edge: not written yet")
