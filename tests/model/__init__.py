"""Makes test module names unique across folders (each layer has its own test_bad_input.py)."""
