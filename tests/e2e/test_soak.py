"""1,000 inferences on the csim overlay: device buffers and process memory stay flat."""

import gc
import os

from antq.run import open_overlay
from antq.run.runtime import Runtime


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_thousand_inferences_keep_buffers_and_memory_flat(cnn_q, digits_test):
    _, _, qm = cnn_q
    x = digits_test[0]
    with open_overlay("csim", pace=0) as ov, Runtime(qm, ov) as rt:
        for i in range(100):  # warm up: scratch buffers reach their final size, caches fill
            rt.run(x[i % len(x)][None])
        gc.collect()
        buffers, device_buffers, device_bytes = ov.live_buffers, ov.device.live_buffers, ov.device.live_bytes
        rss = _rss_bytes()
        for i in range(1000):
            rt.run(x[i % len(x)][None])
            assert ov.live_buffers == buffers
        gc.collect()
        assert (ov.device.live_buffers, ov.device.live_bytes) == (device_buffers, device_bytes)
        growth = _rss_bytes() - rss
        assert growth < 8 << 20, f"resident memory grew by {growth / 2**20:.1f} MiB over 1,000 inferences"
    assert ov.device.live_buffers == 0
