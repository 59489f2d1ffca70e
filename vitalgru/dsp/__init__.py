"""Signal processing (numpy/scipy only; ``fs`` in Hz is always explicit)."""
