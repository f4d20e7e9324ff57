"""Which pages a decision's commit writes to SQLite's WAL, by table and index.

    .venv/bin/python benchmarks/wal_pages.py [--n 500] [--pack PATH]

Captures the statements of `--n` allowed decisions (as `decide.py` does for its floor),
replays them on a plain connection into a fresh database whose WAL is never checkpointed,
then reads the WAL's frame headers and names each frame's page with SQLite's `dbstat`. Every
frame is a 4 KiB page the commit checksums and writes: each index on a hot table adds about
one per decision.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import sqlite3
import struct
import tempfile
from pathlib import Path

from discretion import SqlStore, load_pack

_HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("decide_bench", _HERE / "decide.py")
assert _spec is not None
assert _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

WAL_HEADER = 32
FRAME_HEADER = 24


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--pack", type=Path, default=bench.PACK)
    args = parser.parse_args()
    pack = load_pack(args.pack)
    folder = tempfile.mkdtemp()
    context = bench.Records(bench.facts_for(pack.fields))
    decisions = bench.capture(pack, context, "25.00", args.n, 1000, folder)
    path = f"{folder}/pages.db"
    SqlStore(f"sqlite:///{path}").close()
    raw = sqlite3.connect(path, isolation_level=None)
    page_size = int(raw.execute("PRAGMA page_size").fetchone()[0])
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0"):
        raw.execute(f"PRAGMA {pragma}")
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for statements in decisions:
        for sql, parameters in statements:
            raw.execute(sql, parameters).fetchall()
    wal = Path(f"{path}-wal").read_bytes()
    pages: collections.Counter[int] = collections.Counter()
    for offset in range(WAL_HEADER, len(wal) - FRAME_HEADER, FRAME_HEADER + page_size):
        pages[struct.unpack(">I", wal[offset : offset + 4])[0]] += 1
    names = dict(raw.execute("SELECT pageno, name FROM dbstat").fetchall())
    raw.close()
    by_name: collections.Counter[str] = collections.Counter()
    for page, frames in pages.items():
        by_name[names.get(page, "?")] += frames
    label = args.pack.parent.name if args.pack.name == "pack" else args.pack.stem
    print(f"{label}: {sum(pages.values()) / args.n:.2f} pages a commit")
    for name, frames in by_name.most_common():
        print(f"  {name:32s} {frames / args.n:.2f}")


if __name__ == "__main__":
    main()
