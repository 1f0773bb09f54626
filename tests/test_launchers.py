"""What artstudio reads from the launcher that started it (`artstudio.distributed`)."""

from __future__ import annotations

import subprocess
import sys
import time

from artstudio.distributed import launcher_asked_for_more


def _parent(*args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", *args])
    time.sleep(0.2)  # its command line is in /proc once it runs
    return proc


def test_accelerate_starting_one_process_of_several_is_noticed(monkeypatch):
    """`accelerate launch --num_processes 2` without GPUs or --multi_gpu runs one process silently."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    procs = {args: _parent(*args) for args in [("--num_processes", "2"), ("--num_processes=4",), ("--num_processes", "1"), ()]}
    try:
        asked = {args: launcher_asked_for_more(proc.pid) for args, proc in procs.items()}
        monkeypatch.setenv("WORLD_SIZE", "2")  # it did start several: nothing to say
        started = launcher_asked_for_more(procs[("--num_processes", "2")].pid)
        monkeypatch.delenv("WORLD_SIZE")
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")  # not started by accelerate
        other = launcher_asked_for_more(procs[("--num_processes", "2")].pid)
    finally:
        for proc in procs.values():
            proc.kill()
    assert asked == {("--num_processes", "2"): 2, ("--num_processes=4",): 4, ("--num_processes", "1"): None, (): None}
    assert started is None and other is None
