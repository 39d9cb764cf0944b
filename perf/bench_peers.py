"""jitad against its peers: the same problems in JAX, torch, CasADi and hand-written @njit.

    python perf/bench_peers.py --out perf/RESULTS.md --plot perf/hessian_vs_n.png   # ~10 min
    python perf/bench_peers.py --quick                  # small subset, few repeats: ~1-2 min
    python perf/bench_peers.py --only rosenbrock-numpy,lj --libs jitad,jax

Problems (perf/peer_problems.py): chained Rosenbrock in NumPy form (n = 10, 100, 1000, 10^5)
and as a Python scalar loop (n = 10, 100), logistic-regression loss (X 1000x50, 1000x200),
Lennard-Jones energy (10 and 30 particles), sum(x**3) (n = 100, 1000). Operations: value,
gradient, HVP, dense Hessian (skipped where n x n would not fit), and the time to the first
Hessian in a fresh process (perf/peer_latency.py). Libraries (perf/peer_libs.py): the jitad
Tape (recorded once, replayed), JAX (jax.jit, float64), torch (eager; three Hessians),
CasADi (SX, compiled Function through the buffer API; VM and gcc-generated C), hand-written
@njit (the ceiling). A missing library is skipped with a note.

Before anything is timed, each result is checked against the hand-written ceiling at the same
point (itself checked against finite differences of the hand-written gradient): jitad being
wrong raises; a peer being wrong gets a note in its cell. Calls alternate between two nearby
points. Each cell is the median time per call over batches, with the min-max over the batches,
in microseconds; the ratio columns compare jitad with the fastest peer and with the ceiling,
all measured in the same run (the machine may be shared: ratios hold better than absolute
times).

Each library runs in its own fresh process (a `--worker` child of this script), importing the
jitad of this checkout.

Extra row providers: each (module, function) in PROVIDERS whose module exists gets its own
section: function(quick) returns a list of peer_table.Row (rendered with the same tables and
ratios) or a markdown string; the module may define SECTION (a title) and `peer_notes() ->
list[str]`.
"""
import argparse
import datetime
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

PERF = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(PERF)
sys.path[:0] = [PERF, REPO]  # the jitad of this checkout, not whichever one is installed
import peer_latency  # noqa: E402
import peer_libs  # noqa: E402
import peer_table  # noqa: E402
import timing  # noqa: E402
from peer_problems import all_cases, quick_cases  # noqa: E402
from peer_table import Row, Stats, fmt_us, md_table  # noqa: E402

# Modules that add sections of rows (see the docstring); missing ones are skipped with a note.
# (module in perf/, function(quick: bool) -> list[peer_table.Row] or a markdown string)
PROVIDERS = (("bench_sparse", "peer_rows"), ("bench_nested", "peer_rows"))

OP_TITLES = {"value": "value", "gradient": "gradient", "hvp": "Hessian-vector product",
             "hessian": "dense Hessian"}

# The issue's reference points (median µs, this machine) and jitad's targets.
ISSUE_TARGETS = [
    # key, op, JAX jit, CasADi VM, CasADi gcc, target text, test(jitad, row) -> bool
    ("rosenbrock-numpy-1000", "gradient", "19.8", "29.4", "7.8", "<= 7 µs",
     lambda t, row: t <= 7e-6),
    ("rosenbrock-numpy-1000", "hessian", "640", "321", "184", "<= 250 µs",
     lambda t, row: t <= 250e-6),
    ("rosenbrock-loop-100", "gradient", "51", "3.2", "0.47", "<= 3 µs",
     lambda t, row: t <= 3e-6),
    ("logreg-1000x200", "hessian", "2,754", "47,940", "41,478", "< JAX (same run)",
     lambda t, row: isinstance(row.cells.get("JAX"), Stats) and t < row.cells["JAX"].median),
    ("lj-30", "hessian", "493", "813", "116 (after 114 s of gcc)", "< 200 µs",
     lambda t, row: t < 200e-6),
    ("cube-1000", "hessian", "194", "215", "181", "<= 200 µs", lambda t, row: t <= 200e-6),
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ correctness
def _rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return np.inf
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-300))


def references(case, x, v):
    """{op: value} from the hand-written ceiling at x; the ceiling's HVP is checked against
    central differences of its gradient and its Hessian against its HVP."""
    p, c = case.p, case.p.ref_args
    ref = {"value": np.array([p.ref_f(x, *c)]), "gradient": p.ref_grad(x, *c),
           "hvp": case.ref_hvp(x, v, *c)}
    h = 1e-5 * (1.0 + np.max(np.abs(x)))
    fd = (p.ref_grad(x + h * v, *c) - p.ref_grad(x - h * v, *c)) / (2 * h)
    err = _rel_err(ref["hvp"], fd)
    assert err < 1e-5, f"{case.key}: hand-written HVP vs finite differences, rel err {err:.1e}"
    if case.dense:
        ref["hessian"] = case.ref_hess(x, *c)
        err = _rel_err(ref["hessian"] @ v, ref["hvp"])
        assert err < 1e-10, f"{case.key}: hand-written Hessian vs its HVP, rel err {err:.1e}"
    return ref


# ------------------------------------------------------------------ one case
def bench_case(case, libs, target, batches):
    xs = case.p.points(2)
    v = np.sin(np.arange(case.n) + 1.0)
    ref = references(case, xs[0], v)
    rows = {op: Row(case.label, case.n, op, family=case.family, key=case.key)
            for op in peer_libs.OPS}
    for lib in libs:
        if lib.note:
            continue
        t0 = time.perf_counter()
        try:
            ops = lib.prepare(case, xs, v)
        except Exception as e:  # a peer failing on a problem is a note, jitad failing is a bug
            if lib.name == "jitad":
                raise
            traceback.print_exc()
            ops = {(op, lib.name): f"failed: {type(e).__name__}" for op in peer_libs.OPS}
        for (op, col), entry in ops.items():
            if isinstance(entry, str):
                rows[op].cells[col] = entry
                continue
            err = _rel_err(entry.to_numpy(entry.fn(*entry.args[0])), ref[op])
            if not err < 1e-9:
                if lib.name == "jitad":
                    raise AssertionError(f"{case.key}: jitad {op} differs from the hand-written "
                                         f"one, rel err {err:.2e}")
                rows[op].cells[col] = f"wrong (rel err {err:.0e})"
                continue
            rows[op].cells[col] = peer_table.measure(entry.fn, entry.args, target, batches,
                                                     warm_up=True)
        log(f"  {case.key}: {lib.name} ({time.perf_counter() - t0:.1f} s)")
    return [rows[op] for op in peer_libs.OPS]


# ------------------------------------------------------------------ report parts
def machine_description(results, in_process=False):
    import numba
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "?"
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
        mem = f", {kb / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    lines = [f"- CPU: {cpu}, {os.cpu_count()} logical CPUs{mem}; {platform.platform()}",
             f"- Python {platform.python_version()}, numpy {np.__version__}, numba "
             f"{numba.__version__}"]
    libs = [r["desc"] if not r["note"] else f"{r['name']}: not installed" for r in results]
    if libs:
        lines.append("- Libraries (" + ("all in one process" if in_process else
                                        "each measured in its own process") + "): "
                     + ", ".join(libs))
    return "\n".join(lines)


def _fmt_s(s):
    return f"{s * 1e3:.3g} ms" if s < 1.0 else f"{s:.3g} s"


def setup_table(cases, results):
    by = {r["name"]: r["setup"] for r in results if not r["note"]}
    cols = [("jitad", "record", "jitad record"),
            ("JAX", "jit hessian", "JAX jit(hessian) first call"),
            ("JAX", "jit ", "JAX first calls, all 4"),
            ("CasADi", "SX graph and Functions", "CasADi SX graph + 4 Functions"),
            ("CasADi", "gcc ", "CasADi gcc, all compiled")]
    cols = [c for c in cols if c[0] in by]
    body = []
    for case in cases:
        cells = []
        for lib, what, _ in cols:
            got = [t for (key, w), t in by[lib].items() if key == case.key and w.startswith(what)]
            cells.append(_fmt_s(sum(got)) if got else "—")
        body.append([case.label, str(case.n)] + cells)
    return md_table(["problem", "n"] + [c[2] for c in cols], body, n_text=2)


def targets_table(rows):
    body = []
    for key, op, jx, vm, gcc, text, test in ISSUE_TARGETS:
        row = next((r for r in rows if r.key == key and r.op == op), None)
        if row is None:
            continue

        def cell(col):
            c = row.cells.get(col)
            return fmt_us(c.median) if isinstance(c, Stats) else "—"
        best = peer_table.best(row, "jitad")  # (seconds, column) of the fastest jitad column
        verdict = "—" if best is None else ("PASS" if test(best[0], row) else "MISS")
        jitad_cell = "—" if best is None else (
            fmt_us(best[0]) + ("" if best[1] == "jitad" else f" ({best[1]})"))
        body.append([f"{row.problem} n={row.n}", OP_TITLES[op], jx, vm, gcc, cell("JAX"),
                     cell("CasADi VM"), cell("CasADi gcc"), jitad_cell, text, verdict])
    return md_table(["problem", "op", "issue: JAX", "issue: CasADi VM", "issue: CasADi gcc",
                     "JAX", "CasADi VM", "CasADi gcc", "jitad", "target", "verdict"], body, 2)


# Issue 4: one-shot jitad.hessian (recording included) at least this many times faster than
# torch.autograd.functional.hessian(vectorize=True) on every problem
ONE_SHOT_VS_TORCH = 10.0


def one_shot_lines(rows):
    """The issue's one-shot figure: per Hessian row, torch AF vec=True / jitad one-shot."""
    got = []
    for row in rows:
        j, t = row.cells.get("jitad one-shot"), row.cells.get("torch AF vec=True")
        if row.op == "hessian" and isinstance(j, Stats) and isinstance(t, Stats):
            got.append((t.median / j.median, f"{row.problem} n={row.n}"))
    if not got:
        return []
    worst = min(got)
    verdict = "PASS" if worst[0] >= ONE_SHOT_VS_TORCH else "MISS"
    return [f"- {verdict}: one-shot `jitad.hessian` (recording included) >= "
            f"{ONE_SHOT_VS_TORCH:.0f}x faster than torch AF vec=True on every problem: smallest "
            f"ratio {worst[0]:.1f}x ({worst[1]}); all: "
            + ", ".join(f"{name} {r:.0f}x" for r, name in got)]


def run_providers(patterns, quick):
    """[(title, markdown)] from the PROVIDERS that exist; notes for the ones that do not."""
    import importlib
    out = []
    for name, func in PROVIDERS:
        if patterns and not any(p in name for p in patterns):
            continue
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            out.append((name, f"perf/{name}.py is not present in this checkout: no rows."))
            continue
        if not hasattr(mod, func):
            out.append((name, f"perf/{name}.py defines no {func}(quick): no rows."))
            continue
        log(f"provider {name}.{func}")
        got = getattr(mod, func)(quick=quick)
        # a list of peer_table.Row gets the tables and ratios; a string is markdown as it is
        text = got if isinstance(got, str) else peer_table.render(list(got))
        notes = list(mod.peer_notes()) if hasattr(mod, "peer_notes") else []
        if notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in notes)
        out.append((getattr(mod, "SECTION", name), text))
    return out


def plot(rows, path):
    """PNG: dense Hessian median time against n, one panel per problem family, one line per
    library column."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    hrows = [r for r in rows if r.op == "hessian"]
    families = list(dict.fromkeys(r.family for r in hrows))
    cols = list(dict.fromkeys(c for r in hrows for c in r.cells))
    ncol = min(3, len(families))
    nrow = (len(families) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.0 * nrow), squeeze=False)
    markers = "os^vD<>px*h"
    for ax, fam in zip(axes.ravel(), families):
        rs = sorted((r for r in hrows if r.family == fam), key=lambda r: r.n)
        for i, col in enumerate(cols):
            pts = [(r.n, r.cells[col]) for r in rs if isinstance(r.cells.get(col), Stats)]
            if not pts:
                continue
            n = np.array([p[0] for p in pts])
            med = np.array([p[1].median for p in pts]) * 1e6
            err = np.array([[p[1].median - p[1].lo for p in pts],
                            [p[1].hi - p[1].median for p in pts]]) * 1e6
            style = dict(lw=2.5, color="black") if col == "jitad" else (
                dict(ls="--", color="grey") if col == "njit" else {})
            ax.errorbar(n, med, yerr=err, marker=markers[i % len(markers)], label=col,
                        capsize=2, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(fam)
        ax.set_xlabel("n (inputs)")
        ax.set_ylabel("dense Hessian, µs per call")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.ravel()[len(families):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.ravel()[:len(families)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    rows_of_legend = (len(labels) + 4) // 5
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=9,
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle("jitad and peers: dense Hessian time against n (median, bars min-max)")
    fig.tight_layout(rect=(0, 0.045 * rows_of_legend / nrow + 0.02, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ one library per process
def select_cases(quick, patterns):
    cases = quick_cases() if quick else all_cases()
    if patterns:
        keys = {c.key for c in cases}  # a full key selects itself only, else substrings match
        cases = [c for c in cases
                 if any(c.key == p if p in keys else p in c.key for p in patterns)]
    return cases


def measure_library(name, args, patterns, target, batches):
    """{"name", "note", "desc", "setup", "rows"} of one library over the selected cases."""
    lib = peer_libs.libraries([name], casadi_gcc=not args.no_casadi_gcc,
                              casadi_big=args.casadi_big)[0]
    result = {"name": lib.name, "note": lib.note, "desc": lib.name, "setup": {}, "rows": []}
    if not lib.note:
        for case in select_cases(args.quick, patterns):
            result["rows"] += bench_case(case, [lib], target, batches)
        result["setup"] = lib.setup
        result["desc"] = lib.describe()  # after the run: Numba's threading layer is known
    lib.close()
    return result


def worker(name, args, patterns, target, batches):
    with open(args.worker_out, "wb") as f:
        pickle.dump(measure_library(name, args, patterns, target, batches), f)


def run_library(name, args, patterns, target, batches):
    """measure_library in a fresh process (or in this one with --in-process): libraries that
    share a process disturb each other's threads."""
    if args.in_process:
        return measure_library(name, args, patterns, target, batches)
    log(f"{name}: measuring in a fresh process")
    passed = [a for a, on in (("--quick", args.quick), ("--no-casadi-gcc", args.no_casadi_gcc),
                              ("--casadi-big", args.casadi_big)) if on]
    if args.only:
        passed += ["--only", args.only]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "rows.pickle")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name,
                               "--worker-out", out] + passed, cwd=REPO)
        if proc.returncode != 0:
            if name == "jitad":
                raise RuntimeError(f"the jitad worker failed (exit {proc.returncode})")
            return {"name": name, "note": f"{name} worker failed (exit {proc.returncode})",
                    "desc": name, "setup": {}, "rows": []}
        with open(out, "rb") as f:
            return pickle.load(f)


# ------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small subset, few repeats, one fresh process per latency row")
    ap.add_argument("--only", default="",
                    help="comma-separated substrings of case keys (rosenbrock-numpy-1000, "
                         "rosenbrock-loop-10, logreg-1000x50, lj-30, cube-1000, ...), "
                         "'latency', or provider module names; default everything")
    ap.add_argument("--libs", default="",
                    help="comma-separated subset of jitad,njit,jax,torch,casadi")
    ap.add_argument("--out", help="write the markdown report here (e.g. perf/RESULTS.md)")
    ap.add_argument("--plot", help="write the Hessian-vs-n PNG here (needs matplotlib)")
    ap.add_argument("--latency-runs", type=int, default=None,
                    help="fresh processes per latency row (default 3, 1 with --quick)")
    ap.add_argument("--no-casadi-gcc", action="store_true", help="skip CasADi's gcc variant")
    ap.add_argument("--casadi-big", action="store_true",
                    help="build CasADi's dense SX Hessian even when estimated over "
                         "peer_libs.CASADI_HESSIAN_MAX instructions (minutes of build time)")
    ap.add_argument("--note", default="", help="a line placed under the report's title")
    ap.add_argument("--in-process", action="store_true",
                    help="measure every library in this process (debugging only: their "
                         "thread pools - torch's OpenMP, XLA's, Numba's - then share one "
                         "process)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)       # internal: one library's rows
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    patterns = [p for p in args.only.split(",") if p]
    lib_names = [p.strip().lower() for p in args.libs.split(",") if p.strip()] or None
    target, batches = (0.03, 3) if args.quick else (peer_table.TARGET, peer_table.BATCHES)
    runs = args.latency_runs or (1 if args.quick else 3)

    if args.worker:
        return worker(args.worker, args, patterns, target, batches)
    t_start = time.perf_counter()
    cpu_start = timing.cpu_seconds()
    names = lib_names or list(peer_libs.NAMES)
    unknown = set(names) - set(peer_libs.NAMES)
    if unknown:
        ap.error(f"unknown --libs {sorted(unknown)}; choose from {', '.join(peer_libs.NAMES)}")
    results = [run_library(name, args, patterns, target, batches) for name in names]
    notes = [r["note"] for r in results if r["note"]]
    for note in notes:
        log(f"note: {note}")
    cases = select_cases(args.quick, patterns)
    merged = {}  # (case key, op) -> Row with every library's cells
    for r in results:
        for row in r["rows"]:
            merged.setdefault((row.key, row.op), Row(row.problem, row.n, row.op, row.family,
                                                     row.key)).cells.update(row.cells)
    rows = [merged[(c.key, op)] for c in cases for op in peer_libs.OPS if (c.key, op) in merged]

    latency = None
    if not patterns or "latency" in patterns:
        log("latency (fresh processes)")
        latency = peer_latency.measure(runs, libs=lib_names, cold=not args.quick, log=log)
    extra = run_providers(patterns, args.quick)
    elapsed = time.perf_counter() - t_start
    others = timing.other_load(cpu_start, elapsed)

    command = "python perf/bench_peers.py" + "".join(
        f" {a}" if " " not in a else f' "{a}"' for a in (argv if argv is not None
                                                         else sys.argv[1:]))
    out = ["# jitad and its peers (perf/bench_peers.py)", ""]
    if args.note:
        out += [args.note, ""]
    out += [f"Made by `{command}` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} "
            f"UTC in {elapsed:.0f} s.", "", machine_description(results, args.in_process), ""]
    if others is not None:
        busy, steal = others
        out += [f"Other processes kept {busy:.2f} CPUs busy on average during the run and the "
                f"hypervisor took {steal:.2f} CPUs' worth"
                + ("." if busy + steal < 0.15 else
                   " — NOT QUIET: absolute times are unreliable, compare the ratios."), ""]
    out += ["How to read: each cell is the median time per call in microseconds with the min-max "
            "over the timed batches in parentheses. Calls alternate between two nearby points "
            "(no library answers from its previous call's cache). **jitad / fastest peer** < 1 "
            "means jitad is faster than every peer on that row; **jitad / njit** compares with "
            "the hand-written @njit ceiling. jitad is the Tape (recorded once, replayed: "
            "`tape.forward/gradient/hvp/hessian`); JAX is `jax.jit` of the function, `grad`, "
            "`jvp(grad)` and `hessian`; torch is eager (gradient by `autograd.grad`, HVP by double "
            "backward, Hessians by `torch.autograd.functional.hessian` "
            "(AF) with vectorize=True/False and `torch.func.hessian`); CasADi is an SX graph "
            "and `casadi.Function` called through its buffer API, on its virtual machine (VM) "
            "and as gcc -O1-compiled generated C. Every result was checked against the "
            "hand-written one before timing.", ""]
    if notes:
        out += [f"- Note: {n}." for n in notes] + [""]
    if rows:
        out += ["## Issue 4 reference points and targets", "",
                "The issue's medians (µs, measured earlier on this machine) beside this run's.",
                "", targets_table(rows), ""] + one_shot_lines(rows) + [""]
        for op in peer_libs.OPS:
            out += [f"## {OP_TITLES[op]}", "",
                    peer_table.render([r for r in rows if r.op == op], headings=False), ""]
        out += ["## One-time setup (in each library's process)", "",
                "Recording (jitad), tracing and XLA compile (JAX: the first call of each jitted "
                "function), building the SX graph and Functions (CasADi), generating and "
                "compiling C (CasADi gcc). Not part of the per-call times above.", "",
                setup_table(cases, results), ""]
        if args.plot:
            out += [f"Plot of the dense Hessian times: [{os.path.basename(args.plot)}]"
                    f"({os.path.basename(args.plot)})", ""]
    if latency is not None:
        out += ["## Time to first Hessian in a fresh process", "",
                peer_latency.render(latency, runs), ""]
    for title, text in extra:
        out += [f"## {title}", "", text, ""]
    report = "\n".join(out).rstrip() + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
        log(f"wrote {args.out}")
    if args.plot:
        if any(r.op == "hessian" for r in rows):
            plot(rows, args.plot)
            log(f"wrote {args.plot}")
        else:
            log("no Hessian rows: no plot")


if __name__ == "__main__":
    main()
