"""The engine benchmark: the same "clean" job on Weir, a native-Rust baseline, DuckDB, Polars,
DataFusion and Spark (local, 2 cores), one after another on the same generated input, in one run.

Run it through scripts/bench-engines.sh (which builds Weir, the plugins and the baseline and sets
up the Python env); see that script for the options. For each engine this prints the wall time
of its whole process (interpreter or JVM start-up included), the time it reports for the job
itself, the peak RSS of its whole process tree, and Weir's ratio against it; then checks that
every engine wrote the same rows, and the targets of issue 4.

How things are measured:
- Each engine runs as a child process. Wall time: from spawn to exit.
- Peak RSS: the sum of the RSS of the child and all its descendants (a JVM under its Python
  driver counts), sampled every 20 ms, or the largest single process's max RSS from the kernel
  (wait4 rusage; this driver is a child subreaper, so orphaned descendants are reaped and
  counted), whichever is larger.
- Same rows: one reader (DuckDB, in this process) reads every engine's output directory
  (``event_date=*/*.parquet``, hive partitioning) and computes an order-independent digest: the
  sum over rows of a 64-bit hash of the row, with every column normalised to one type first
  (strings as VARCHAR, ``ts`` as microseconds since the epoch, dates as DATE, ``cost_micros``
  as BIGINT). Equal row counts and equal digests mean the same multiset of rows (up to hash
  collisions). On a mismatch, per-column digests say which column differs.
- RSS flatness: Weir runs once more on 4x the input (each input file hard-linked 4 times under
  another name, so only the size changes) and its peak RSS is compared with the 1x run.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import job  # noqa: E402

ENGINES = ("weir", "native", "duckdb", "polars", "datafusion", "spark")
LABELS = {
    "weir": "Weir (weir run, Wasm plugins)",
    "native": "native Rust (no sandbox)",
    "duckdb": "DuckDB",
    "polars": "Polars",
    "datafusion": "DataFusion",
    "spark": "Spark local[2]",
}
SAMPLE_SECONDS = 0.02


@dataclass
class Run:
    engine: str
    ok: bool = False
    exit_code: int | None = None
    wall: float = 0.0
    job_seconds: float | None = None
    peak_rss: int = 0  # bytes
    rows: int | None = None
    digest: tuple | None = None
    columns: list[str] = field(default_factory=list)
    error: str | None = None
    report: dict | None = None


def become_subreaper() -> None:
    """Orphaned descendants (a JVM whose parent exited first) get re-parented to this process,
    so they are waited for and their max RSS is counted."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except OSError:
        pass


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd: list[str], log: Path, env: dict | None = None) -> tuple[int, float, int, str]:
    """Runs `cmd`, returns (exit code, wall seconds, peak RSS bytes, stdout)."""
    out_path = log.with_suffix(".out")
    with open(out_path, "wb") as out, open(log, "wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        proc = psutil.Process(child.pid)
        peak = 0
        maxrss_kib = 0
        status = None
        while status is None:
            peak = max(peak, tree_rss(proc))
            pid, st, usage = os.wait4(child.pid, os.WNOHANG)
            if pid == child.pid:
                status, maxrss_kib = st, usage.ru_maxrss
                break
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        # Reap descendants that outlived the child (re-parented to us), counting their max RSS.
        deadline = time.monotonic() + 60
        while True:
            try:
                pid, _, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if time.monotonic() > deadline:
                    print(f"  warning: descendants of {cmd[0]} still running after 60 s", file=sys.stderr)
                    break
                time.sleep(0.1)
                continue
            maxrss_kib = max(maxrss_kib, usage.ru_maxrss)
    return child.returncode, wall, max(peak, maxrss_kib * 1024), out_path.read_text()


def normalised_columns() -> dict[str, str]:
    """SQL that reads each output column as one canonical type, whatever type the engine wrote."""
    exprs = {}
    for c in job.COLUMNS + (job.PARTITION,):
        if c == "ts":
            exprs[c] = "epoch_us(ts)"
        elif c in ("ingest_date", job.PARTITION):
            exprs[c] = f"CAST({c} AS DATE)"
        elif c == "cost_micros":
            exprs[c] = "CAST(cost_micros AS BIGINT)"
        else:
            exprs[c] = f"CAST({c} AS VARCHAR)"
    return exprs


def digest(out: Path) -> tuple[int, tuple, list[str]]:
    """(rows, digests: whole row then per column, output column names) of an output directory."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    source = (
        f"read_parquet('{out}/{job.PARTITION}=*/*.parquet', hive_partitioning = true, "
        f"hive_types = {{'{job.PARTITION}': DATE}})"
    )
    names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    exprs = normalised_columns()
    missing = [c for c in exprs if c not in names]
    if missing:
        raise ValueError(f"{out}: output lacks columns {missing} (has {names})")
    sums = [f"sum(hash({', '.join(exprs.values())}))"]
    sums += [f"sum(hash({e}))" for e in exprs.values()]
    row = con.execute(f"SELECT count(*), {', '.join(sums)} FROM {source}").fetchone()
    con.close()
    return int(row[0]), tuple(int(x) for x in row[1:]), names


def write_pipeline(template: Path, dest: Path, raw: Path, sink: Path, plugins: Path) -> None:
    """bench/clean.toml with absolute source, sink and plugin paths."""
    lines, section = [], None
    for line in template.read_text().splitlines():
        header = re.match(r"^\[+([a-z_.]+)\]+\s*$", line.strip())
        if header:
            section = header.group(1)
        if section == "source" and re.match(r"^url\s*=", line):
            line = f'url = "{raw}"'
        elif section == "sink" and re.match(r"^url\s*=", line):
            line = f'url = "{sink}"'
        elif re.match(r"^plugin\s*=", line):
            name = Path(re.search(r'"(.*)"', line).group(1)).name
            line = f'plugin = "{plugins / name}"'
        lines.append(line)
    dest.write_text("\n".join(lines) + "\n")


def generate(weir: str, raw: Path, rows: int, days: int, seed: int, logs: Path) -> None:
    stamp = raw / ".bench-params.json"
    want = {"rows": rows, "days": days, "seed": seed}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        print(f"input: reusing {raw} ({rows:,} rows over {days} days)")
        return
    print(f"input: generating {rows:,} rows over {days} days into {raw} ...", flush=True)
    started = time.perf_counter()
    with open(logs / "gen.log", "wb") as log:
        subprocess.run(
            [weir, "gen", "clickstream", "--rows", str(rows), "--days", str(days),
             "--seed", str(seed), "--force", str(raw)],
            check=True, stdout=log, stderr=subprocess.STDOUT,
        )
    stamp.write_text(json.dumps(want))
    print(f"input: generated in {time.perf_counter() - started:.0f} s")


def parquet_files(raw: Path) -> list[Path]:
    return sorted(raw.glob("*/*.parquet"))


def replicate(raw: Path, dest: Path, times: int) -> None:
    """`times` hard links of every input file (same partitions, new names)."""
    if dest.exists():
        shutil.rmtree(dest)
    for f in parquet_files(raw):
        d = dest / f.parent.name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(times):
            os.link(f, d / f"{f.stem}-copy{i}.parquet")


def warm(files: list[Path]) -> None:
    """Reads the input once so no engine pays for a cold page cache."""
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def last_json(text: str) -> dict | None:
    """The engine's JSON report: the last line that parses, or the whole text (pretty JSON)."""
    for candidate in [text] + text.strip().splitlines()[::-1]:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def run_engine(engine: str, args, paths: dict, raw: Path, out: Path, tag: str = "") -> Run:
    run = Run(engine)
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    logs: Path = paths["logs"]
    if engine in ("weir", "native"):
        spec = paths["work"] / f"{engine}{tag}.toml"
        write_pipeline(paths["template"], spec, raw, out, Path(args.plugins).resolve())
        if engine == "weir":
            cmd = [args.weir, "--output", "json", "run", str(spec), "--no-progress"]
        else:
            cmd = [args.native, str(spec)]
    else:
        script = Path(__file__).resolve().parent / f"{engine}_clean.py"
        cmd = [sys.executable, str(script), str(raw), str(out)]
    print(f"  {LABELS[engine]}{tag} ...", end="", flush=True)
    code, wall, rss, stdout = run_measured(cmd, logs / f"{engine}{tag}.log")
    run.exit_code, run.wall, run.peak_rss = code, wall, rss
    report = last_json(stdout)
    run.report = report
    if code != 0:
        run.error = f"exit {code}; see {logs / (engine + tag)}.log"
        print(f" FAILED ({run.error})")
        return run
    if report:
        if "job_seconds" in report:
            run.job_seconds = report["job_seconds"]
        elif "wall_ms" in report:
            run.job_seconds = report["wall_ms"] / 1000
    try:
        run.rows, run.digest, run.columns = digest(out)
        run.ok = True
    except Exception as e:  # noqa: BLE001 - reported, the run goes on
        run.error = f"reading its output: {e}"
    print(f" {wall:.1f} s, peak RSS {rss / 2**20:.0f} MiB, {run.rows} rows" if run.ok else f" {run.error}")
    return run


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |", line]
    for r in rows:
        out.append("| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |")
    out.append(line)
    return "\n".join(out)


def weir_profile(run: Run, native: Run | None) -> list[str]:
    """Where Weir's time went, from its report (plugin time per step, summed over tasks)."""
    lines = []
    rep = run.report or {}
    steps = rep.get("steps") or []
    native_steps = {s.get("label"): s for s in ((native.report or {}).get("steps") or [])} if native else {}
    if not steps:
        return lines
    lines.append("Weir's plugin time per step (CPU ms summed over tasks; native = same code unsandboxed):")
    for s in steps:
        label = s.get("label") or s.get("name")
        ms = s.get("cpu_ms", s.get("plugin_ms"))
        nat = native_steps.get(label, {})
        nat_ms = nat.get("cpu_ms", nat.get("plugin_ms"))
        lines.append(f"  {label:<12} rows in {s.get('rows_in', '?'):>12}  out {s.get('rows_out', '?'):>12}"
                     f"  wasm {ms} ms  native {nat_ms} ms")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=24_000_000, help="input rows (default 24M: about 1 GB of Parquet)")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of " + ",".join(ENGINES))
    p.add_argument("--no-flatness", action="store_true", help="skip the 4x-input RSS phase")
    p.add_argument("--work", required=True, help="work directory (input, outputs, logs)")
    p.add_argument("--weir", required=True, help="the weir binary")
    p.add_argument("--native", required=True, help="the weir-bench-native binary")
    p.add_argument("--plugins", required=True, help="directory of the weir_plugin_*.wasm components")
    p.add_argument("--template", required=True, help="the benchmark pipeline (bench/clean.toml)")
    p.add_argument("--keep-output", action="store_true", help="keep every engine's output")
    args = p.parse_args()

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        p.error(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    become_subreaper()
    work = Path(args.work).resolve()
    paths = {"work": work, "logs": work / "logs", "template": Path(args.template).resolve()}
    paths["logs"].mkdir(parents=True, exist_ok=True)
    lock = open(work / ".bench.lock", "w")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        p.error(f"another benchmark is running in {work}")
    raw = work / "raw"
    generate(args.weir, raw, args.rows, args.days, args.seed, paths["logs"])
    files = parquet_files(raw)
    size = sum(f.stat().st_size for f in files)
    print(f"input: {len(files)} Parquet files, {size / 2**20:,.0f} MiB, {args.rows:,} rows + duplicates")
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
          f"load average {os.getloadavg()[0]:.2f}")
    warm(files)
    # Compile the plugins into Weir's code cache once, as a deployed worker would have them.
    spec = work / "validate.toml"
    write_pipeline(paths["template"], spec, raw, work / "out" / "validate", Path(args.plugins).resolve())
    subprocess.run([args.weir, "pipeline", "validate", str(spec)], check=True, stdout=subprocess.DEVNULL)

    print("running the clean job (filter bots, mask user_id/ip, derive event_date, write by date):")
    runs: dict[str, Run] = {}
    for engine in engines:
        runs[engine] = run_engine(engine, args, paths, raw, work / "out" / engine)
        if not args.keep_output and engine not in ("weir",):
            shutil.rmtree(work / "out" / engine, ignore_errors=True)

    flat = None
    if "weir" in runs and runs["weir"].ok and not args.no_flatness:
        print("RSS flatness: Weir on 4x the input (each file hard-linked 4 times):")
        replicate(raw, work / "raw4x", 4)
        warm(parquet_files(work / "raw4x")[: len(files)])
        flat = run_engine("weir", args, paths, work / "raw4x", work / "out" / "weir4x", tag=" 4x")
        shutil.rmtree(work / "out" / "weir4x", ignore_errors=True)
        shutil.rmtree(work / "raw4x", ignore_errors=True)
        if flat.ok and runs["weir"].rows is not None and flat.rows != 4 * runs["weir"].rows:
            flat.ok, flat.error = False, f"wrote {flat.rows} rows, expected 4 x {runs['weir'].rows}"
    if not args.keep_output:
        shutil.rmtree(work / "out" / "weir", ignore_errors=True)

    # Same rows: compare with the first engine that succeeded (Weir if it did).
    reference = next((r for r in runs.values() if r.ok), None)
    failures = [r for r in runs.values() if not r.ok]
    for r in runs.values():
        if r.ok and reference and (r.rows, r.digest[0]) != (reference.rows, reference.digest[0]):
            names = list(normalised_columns())
            differ = [n for n, a, b in zip(names, r.digest[1:], reference.digest[1:]) if a != b]
            r.error = f"rows differ from {reference.engine}'s (columns differing: {differ or 'none; row multiset'})"
            failures.append(r)

    weir = runs.get("weir")
    weir_ok = weir is not None and weir.ok
    rows_out = []
    for e, r in runs.items():
        same = "yes" if r.ok and r.error is None else ("ref" if r is reference else "NO")
        if r is reference and r.ok:
            same = "reference"
        time_ratio = weir.wall / r.wall if weir_ok and r.ok and r.wall else None
        rss_ratio = weir.peak_rss / r.peak_rss if weir_ok and r.ok and r.peak_rss else None
        rows_out.append([
            LABELS[e],
            f"{r.wall:.2f}" if r.exit_code == 0 else "failed",
            f"{r.job_seconds:.2f}" if r.job_seconds is not None else "-",
            f"{r.peak_rss / 2**20:,.0f}",
            f"{r.rows:,}" if r.rows is not None else "-",
            same,
            fmt_ratio(time_ratio),
            fmt_ratio(rss_ratio),
        ])
    print()
    print(f"clean job, {args.rows:,} input rows ({size / 2**20:,.0f} MiB Parquet), {os.cpu_count()} cores")
    print(table(rows_out, ["engine", "wall s", "job s", "peak RSS MiB", "rows out", "same rows",
                           "Weir time ratio", "Weir RSS ratio"]))
    print("wall s: the whole process (start-up included); job s: the engine's own timing of the job;")
    print("Weir time ratio: Weir's wall time / the engine's (below 1: Weir is faster).")
    for r in failures:
        print(f"  {LABELS[r.engine]}: {r.error}")

    print()
    print("targets (issue 4):")
    results = {}

    def target(name: str, ok: bool | None, detail: str) -> None:
        results[name] = ok
        verdict = "n/a" if ok is None else ("met" if ok else "MISSED")
        print(f"  [{verdict:>6}] {name}: {detail}")

    def ratio_target(name: str, engine: str, limit: float, faster_by: bool = False) -> None:
        other = runs.get(engine)
        if not (weir_ok and other and other.ok):
            target(name, None, f"needs Weir and {engine} to have run")
            return
        if faster_by:
            x = other.wall / weir.wall
            target(name, x >= limit, f"Weir {weir.wall:.2f} s vs {other.wall:.2f} s: {x:.2f}x faster (want >= {limit}x)")
        else:
            x = weir.wall / other.wall
            target(name, x <= limit, f"Weir {weir.wall:.2f} s vs {other.wall:.2f} s: {x:.2f}x (want <= {limit}x)")

    ratio_target("Weir at least 5x faster than Spark local", "spark", 5.0, faster_by=True)
    ratio_target("Weir at most 1.0x DuckDB's wall time", "duckdb", 1.0)
    ratio_target("Weir within 1.25x of native Rust", "native", 1.25)
    if flat is not None and flat.ok and weir_ok:
        x = flat.peak_rss / weir.peak_rss
        target("peak RSS flat: 4x input <= 1.3x RSS", x <= 1.3,
               f"{weir.peak_rss / 2**20:,.0f} MiB at 1x, {flat.peak_rss / 2**20:,.0f} MiB at 4x "
               f"({flat.wall:.1f} s): {x:.2f}x")
    else:
        target("peak RSS flat: 4x input <= 1.3x RSS", None,
               "skipped" if flat is None else f"4x run failed: {flat.error}")

    if weir_ok:
        prof = weir_profile(weir, runs.get("native"))
        if prof:
            print()
            print("\n".join(prof))

    summary = {
        "rows": args.rows, "input_bytes": size, "cores": os.cpu_count(),
        "runs": {e: {k: v for k, v in vars(r).items() if k != "report"} for e, r in runs.items()},
        "flatness": None if flat is None else {"wall": flat.wall, "peak_rss": flat.peak_rss, "ok": flat.ok},
        "targets": results,
    }
    (work / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nresults: {work / 'results.json'}; logs: {paths['logs']}")
    return 1 if failures or (flat is not None and not flat.ok) else 0


if __name__ == "__main__":
    sys.exit(main())
