"""Groups a `perf record` profile of `weir run` into where the time goes: Parquet decode,
the plugins' own code (Wasm), crossing the sandbox (copies, IPC, UTF-8 validation), Parquet
encode and zstd, the kernel (page faults, I/O), allocation, and the rest.

    perf record -F 499 -o perf.data -- weir run PIPELINE.toml --no-progress
    python perf_breakdown.py perf.data

A rough guide, not an exact account: symbols are matched by name, and inlined code is counted
where it was inlined.
"""
import re
import subprocess
import sys
from collections import defaultdict

# (category, regex on "dso symbol"), first match wins.
RULES = [
    ("zstd compress (output)", r"ZSTD_compress|ZSTD_encode|HUF_compress|HIST_|ZSTD_(?!decompress)|FSE_(?!decode)|HUF_(?!decompress)"),
    ("zstd decompress (input)", r"ZSTD_decompress|HUF_decompress|FSE_decode|ZSTD_"),
    ("kernel (page faults, I/O, scheduling)", r"^\[kernel"),
    ("wasm: sha256 in mask", r"\.cwasm .*sha2"),
    ("wasm: UTF-8 validation / IPC decode in guest", r"\.cwasm .*(from_utf8|arrow_ipc|flatbuffers)"),
    ("wasm: other plugin code", r"\.cwasm"),
    ("sandbox crossing (wasmtime lift/lower, IPC)", r"wasmtime|arrow_ipc|flatbuffers|cranelift"),
    ("memcpy/memmove (batch copies)", r"memmove|memcpy"),
    ("allocator", r"malloc|_int_free|_int_malloc|unlink_chunk|cfree|realloc|sysmalloc|malloc_consolidate"),
    ("parquet encode (dictionary, stats, pages)", r"arrow_writer|column::writer|interner|encoder|encodings::encoding|min_max|aggregate|ahash|hashbrown|memcmp|statistics|rle::RleEncoder|bit_util::BitWriter"),
    ("sink: per-row partition keys", r"weir_lake::sink|chrono::|fmt::Write|core::fmt::write|Formatter"),
    ("parquet decode", r"parquet::|arrow_reader|OffsetBuffer|decoding|snap"),
    ("arrow kernels on host (take, concat, filter)", r"arrow_select|arrow_data|arrow_array|arrow_buffer|arrow_cast"),
]


def main(path: str) -> None:
    out = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "--sort", "dso,sym", "--stdio"],
        capture_output=True, text=True, check=True,
    ).stdout
    totals = defaultdict(float)
    for line in out.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
        key = f"{dso} {sym}"
        for category, rule in RULES:
            if re.search(rule, key):
                totals[category] += pct
                break
        else:
            totals["other"] += pct
    for category, pct in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {pct:5.1f}%  {category}")


if __name__ == "__main__":
    main(sys.argv[1])
