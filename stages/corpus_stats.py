"""Stage corpus_stats: documents, characters and share of characters per subset and split -> metrics/corpus.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's own package, also in scratch copies

from collections import defaultdict

from monosemantic.config import ConfigError, load_params
from monosemantic.corpus import SPLITS, CorpusError, iter_documents
from monosemantic.utils import fail, write_json


def main() -> None:
    try:
        params = load_params()
        stats = {}
        for split in SPLITS:
            docs, chars = defaultdict(int), defaultdict(int)
            for doc in iter_documents(params.corpus.data_dir, split):
                docs[doc.subset] += 1
                chars[doc.subset] += len(doc.text)
            total = sum(chars.values())
            stats[split] = {
                subset: {"documents": docs[subset], "chars": chars[subset], "char_share": chars[subset] / total}
                for subset in sorted(docs)
            }
            stats[split]["total"] = {"documents": sum(docs.values()), "chars": total, "char_share": 1.0}
    except (ConfigError, CorpusError) as e:
        fail(str(e))
    write_json("metrics/corpus.json", stats)
    for split in SPLITS:
        print(f"{split}: " + ", ".join(f"{k} {v['documents']} docs {v['chars']:,} chars" for k, v in stats[split].items()))


if __name__ == "__main__":
    main()
