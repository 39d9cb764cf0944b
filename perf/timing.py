"""Timing helpers shared by the perf/ scripts: median per-call times and machine load."""
import gc
import os
import statistics
import time


def run_calls(f, calls):
    """Seconds to call f(*a) for every a in calls, with the garbage collector off."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for a in calls:
            f(*a)
        return time.perf_counter() - t0
    finally:
        if gc_was:
            gc.enable()


def timed(f, arglist, target, batches):
    """Median seconds per call of f(*a), a cycling over arglist; warms up once first. Calls are
    timed in `batches` batches (of about target/batches seconds each when calls are fast)."""
    f(*arglist[0])
    number, t = 1, run_calls(f, arglist[:1])
    while t < 0.002:  # calibrate on a batch of at least ~2 ms
        number *= 10
        t = run_calls(f, [arglist[i % len(arglist)] for i in range(number)])
    per = t / number
    if per * batches <= target:
        batch = max(1, int(target / batches / per))
        repeats = batches
    else:  # slow calls: one call per batch, at least 3 of them
        batch = 1
        repeats = max(3, min(batches, int(target / per)))
    calls = [arglist[i % len(arglist)] for i in range(batch)]
    return statistics.median(run_calls(f, calls) / batch for _ in range(repeats))


def cpu_seconds():
    """(CPU seconds used by the whole machine, by this process and its finished children,
    stolen by the hypervisor): Linux /proc/stat, else None. Children count as our own: the
    peer suite measures every library in a child process, which is not load from others."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
        machine = (sum(fields[:7]) - fields[3] - fields[4]) / tick
        steal = fields[7] / tick if len(fields) > 7 else 0.0
    except (OSError, ValueError, IndexError):
        return None
    t = os.times()
    return machine, t.user + t.system + t.children_user + t.children_system, steal


def other_load(start, wall):
    """(CPUs kept busy by other processes, CPUs' worth of time stolen by the hypervisor) on
    average since `start` (a cpu_seconds()); None when unknown."""
    end = cpu_seconds()
    if start is None or end is None:
        return None
    others = max(0.0, ((end[0] - start[0]) - (end[1] - start[1])) / wall)
    return others, (end[2] - start[2]) / wall


def load_note(start, wall):
    """One sentence on the CPUs other processes and the hypervisor took since `start` (a
    cpu_seconds()) over `wall` seconds, for a benchmark's printout ("" when unknown)."""
    load = other_load(start, wall)
    if load is None:
        return ""
    return (f"other processes kept {load[0]:.2f} CPUs busy on average during the run "
            f"(hypervisor steal {load[1]:.2f} CPUs)")
