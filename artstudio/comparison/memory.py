"""Peak memory of a block of code: the CUDA allocator's peak, or the process's resident set on CPU."""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from typing import Any

import torch


def _rss_bytes() -> int:
    """Resident set size now (Linux /proc, else psutil), or 0 when neither is available."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        return 0


def _reset_rss_peak() -> bool:
    """Linux: reset the kernel's RSS high-water mark (VmHWM) to the current RSS; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _rss_peak_bytes() > 0
    except OSError:
        return False


def _rss_peak_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc), so the RSS baseline of the next block is honest."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of a block of code, in MiB: `peak_mb` (absolute) and `delta_mb` (over the start).

    CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, i.e. tensors only
    (weights, activations, gradients, optimiser state), not the caching allocator's reserve.
    CPU: the resident set size (RSS) of the process. RSS counts everything the process holds
    (interpreter, libraries, the model), so `peak_mb` is the number a user sees in `top` and
    `delta_mb` is what the block added on top. On Linux the kernel's exact high-water mark is
    reset at the start (`/proc/self/clear_refs`) and read at `stop()`; elsewhere a thread samples
    RSS every `interval` seconds (a spike shorter than that can be missed). A sampling thread is
    the fallback only: on a machine with few cores it steals time from the OpenMP threads of the
    block it measures. Freed heap is returned to the OS before the block starts (glibc
    `malloc_trim`), otherwise memory kept from an earlier block would be reused without showing
    up and make later blocks look lighter. `stop()` may be called inside the block (the harness
    stops it after the last training step, so evaluation does not count).
    """

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.02):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.interval = interval
        self.peak_mb = self.delta_mb = self.start_mb = 0.0
        self._peak = self._start = 0
        self._stopped = True
        self._kernel_peak = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakMemory":
        _release_freed_memory()
        self._stopped = False
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._peak = _rss_bytes()
            self._kernel_peak = _reset_rss_peak()
            if not self._kernel_peak:
                self._halt.clear()
                self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
                self._thread.start()
        self.start_mb = self._start / 2**20
        return self

    def _sample(self) -> None:
        while not self._halt.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self._peak = torch.cuda.max_memory_allocated(self.device)
        elif self._kernel_peak:
            self._peak = max(self._peak, _rss_peak_bytes())
        else:
            self._halt.set()
            if self._thread is not None:
                self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
        self.peak_mb = self._peak / 2**20
        self.delta_mb = max(0, self._peak - self._start) / 2**20

    def __exit__(self, *exc: Any) -> None:
        self.stop()

