print("weir-bench-codec: not written yet")
