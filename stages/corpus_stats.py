"""Stage corpus_stats: documents, characters and share of characters per subset and split -> metrics/corpus.json."""

from monosemantic.core import paths
from monosemantic.data.corpus import SPLITS, corpus_statistics
from monosemantic.core.runner import stage
from monosemantic.core.utils import write_json


@stage()
def main(params) -> None:
    stats = corpus_statistics(params.corpus.data_dir)
    write_json(paths.METRICS / "corpus.json", stats)
    for split in SPLITS:
        print(f"{split}: " + ", ".join(f"{k} {v['documents']} docs {v['chars']:,} chars" for k, v in stats[split].items()))


if __name__ == "__main__":
    main.run()
