"""Rows of perf/bench_peers.py and their markdown: timing with min-max, ratios to the fastest peer.

Extra row providers (perf/bench_sparse.py, perf/bench_nested.py, ...) import only this module
(numpy and the standard library), measure with `measure`, and hand back `Row`s; bench_peers
renders them with the same tables and ratios. Column naming convention, which the ratios use:
a column whose label starts with "jitad" is jitad, one starting with "njit" is a hand-written
ceiling, every other column is a peer.

    from peer_table import Row, measure
    row = Row("rosenbrock numpy", 1000, "sparse Hessian", family="rosenbrock numpy")
    row.cells["jitad"] = measure(f, [(x0,), (x1,)])
    row.cells["CasADi VM"] = "skipped: no CasADi"      # a string is a note shown in the cell
"""
import statistics
from dataclasses import dataclass, field

from timing import run_calls

TARGET = 0.12   # seconds of timed calls per cell
BATCHES = 5     # batches per cell when calls are fast: median and min-max are over batches
SLOW = 2.0      # seconds: calls slower than this are timed twice only


@dataclass
class Stats:
    """Seconds per call: median, min and max over the timed batches (`batches` of `per_batch`)."""
    median: float
    lo: float
    hi: float
    batches: int
    per_batch: int


@dataclass
class Row:
    """One problem size and operation; cells maps a column label to Stats or a note string."""
    problem: str
    n: int
    op: str
    family: str = ""        # problem family: one line per library in the plot of time vs n
    key: str = ""           # the case key --only matches (optional)
    cells: dict = field(default_factory=dict)

    def __post_init__(self):
        self.family = self.family or self.problem


def measure(f, arglist, target=TARGET, batches=BATCHES, warm_up=True):
    """Stats of f(*a), a cycling over arglist (a list of argument tuples). Warms up with three
    calls (unless warm_up=False: the caller already called it): a jitad tape decides its run
    plan at its second sweep and compiles the kernels of that plan at its next call, which
    took ~1 s as the calibration call (a 1.2 s median for tape.forward in an earlier
    RESULTS.md); calls are timed in batches of about
    target/batches seconds. Slow calls get one call per batch and at least 3 batches (2 when a
    call takes over SLOW seconds), the calibration call counting as the first."""
    if warm_up:
        for k in range(3):
            f(*arglist[k % len(arglist)])
    number, t = 1, run_calls(f, arglist[:1])
    while t < 0.002 and number < 10**7:  # calibrate on a batch of at least ~2 ms
        number *= 10
        t = run_calls(f, [arglist[i % len(arglist)] for i in range(number)])
    per = t / number
    if per * batches <= target:
        batch, repeats = max(1, int(target / batches / per)), batches
        calls = [arglist[i % len(arglist)] for i in range(batch)]
        ts = [run_calls(f, calls) / batch for _ in range(repeats)]
    else:
        batch, repeats = 1, (2 if per > SLOW else max(3, min(batches, int(target / per))))
        ts = [per] + [run_calls(f, [arglist[i % len(arglist)]]) for i in range(1, repeats)]
    return Stats(statistics.median(ts), min(ts), max(ts), repeats, batch)


# ------------------------------------------------------------------ formatting
def kind(label):
    """'jitad', 'njit' (hand-written ceiling) or 'peer', from a column label."""
    low = label.lower()
    return "jitad" if low.startswith("jitad") else ("njit" if low.startswith("njit") else "peer")


def fmt_us(s):
    us = s * 1e6
    if us < 9.995:
        return f"{us:.2f}"
    if us < 99.95:
        return f"{us:.1f}"
    return f"{us:,.0f}"


def fmt_cell(c):
    if c is None:
        return ""
    if isinstance(c, str):
        return c
    return f"{fmt_us(c.median)} ({fmt_us(c.lo)}-{fmt_us(c.hi)})"


def best(row, which):
    """(median seconds, column label) of the fastest column of a kind ('jitad', 'njit',
    'peer') on a row, or None."""
    got = [(c.median, label) for label, c in row.cells.items()
           if isinstance(c, Stats) and kind(label) == which]
    return min(got) if got else None


def ratios(row):
    """(jitad / fastest peer, that peer's label, jitad / njit ceiling); None where missing."""
    j, p, c = best(row, "jitad"), best(row, "peer"), best(row, "njit")
    return (None if j is None or p is None else j[0] / p[0], None if p is None else p[1],
            None if j is None or c is None else j[0] / c[0])


def fmt_ratio(r):
    return "—" if r is None else (f"{r:.2f}" if r < 10 else f"{r:.0f}")


def md_table(header, rows, n_text=1):
    """Markdown table; the first n_text columns left-aligned, the others right-aligned."""
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i < n_text else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def render(rows, ops=None, headings=True):
    """Markdown: one table per operation (in order of first appearance, or `ops`; each under a
    "### op" heading unless headings=False), columns in order of first appearance, and the
    ratio columns on every row."""
    ops = ops or list(dict.fromkeys(r.op for r in rows))
    parts = []
    for op in ops:
        rs = [r for r in rows if r.op == op]
        if not rs:
            continue
        cols = list(dict.fromkeys(label for r in rs for label in r.cells))
        head = ["problem", "n"] + cols + ["jitad / fastest peer", "jitad / njit"]
        body = []
        for r in rs:
            q, peer, c = ratios(r)
            body.append([r.problem, str(r.n)] + [fmt_cell(r.cells.get(k)) for k in cols]
                        + [fmt_ratio(q) + (f" ({peer})" if peer else ""), fmt_ratio(c)])
        table = md_table(head, body, n_text=2)
        parts.append(f"### {op}\n\n{table}" if headings else table)
    return "\n\n".join(parts)
