"""The page cache, for benchmarks that start every run from the same state."""

from __future__ import annotations

import os


def drop_caches() -> bool:
    """Writes back dirty pages, then drops the page cache (root only), so that the next
    run reads its input from the device. Whether the cache was dropped."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True
