"""Test support: tiny models and hub-shaped datasets, and the contract suites.

Contract suites (optuna's `optuna/testing/pytest_samplers.py` pattern): `PolicyContract`,
`TaskContract` and `ReporterContract` are base classes of pytest tests that check what
`fsf.policies.BasePolicy`, `fsf.tasks.Task` and `fsf.train.Reporter` promise. Subclass one
in a test module under a name pytest collects (`Test...`) and give it the fixture it names
(`make_policy`; `task` and `model_dir`; `make_reporter`); pytest runs every contract test
on it. docs/architecture.md ("Adding a policy, a task or a reporter") shows how. The suites
import nothing of pytest, torch or transformers until a test runs.

Tiny models and datasets in the hub's formats, for tests and smoke benchmarks.

`tiny_model(dir, arch)` writes a randomly initialised XLM-R or BERT (any depth) plus a word-level
tokenizer with `save_pretrained`; `pair_dataset(dir, schema)` writes a PAWS-X- or XNLI-shaped
dataset in the hub layout (one config per language) or as per-language files;
`tagging_dataset` a PAN-X / WikiAnn-shaped one (`tokens`, `ner_tags`) and `qa_dataset` an
MLQA / XQuAD / SQuAD-shaped one, both in the hub's layout (config names as on the hub, Parquet
files with the hub's features) or as local files. The labels are learnable from the words, so
a few steps of training beat chance.

`hub_mirror(root)` writes local copies of the hub repositories fsf's tasks load by name
(`facebook/xnli`, `google-research-datasets/paws-x`, `google/xtreme`, `unimelb-nlp/wikiann`,
`google/xquad`, `rajpurkar/squad`), each laid out as that repository is: the README's
`dataset_info` (features, splits) and `configs` (`data_files` globs), Parquet files named
`<config dir>/<split>-00000-of-00001.parquet`, the same config names, splits and features.
Point `FSF_HUB_MIRROR` at `root` and the tasks' hub names load from it (fsf.tasks.data).

`tiny_real_benchmark(out)` writes what `fsf data build real` writes, from a tiny E5S1 file
(`tiny_e5s1`) and intent templates of two languages (`TINY_SOURCES`), for the real
benchmark's spaces and commands in tests (needs the `real` extra's hassil).
"""

from fsf.testing._assets import (
    NER_TAGS,
    XNLI_LABELS,
    pair_dataset,
    qa_dataset,
    tagging_dataset,
    tiny_model,
    tiny_tokenizer,
)
from fsf.testing._hub import HUB_REPOS, hub_mirror
from fsf.testing._policy_contract import PolicyContract
from fsf.testing._real import (
    TINY_E5S1,
    TINY_PIECES,
    TINY_SOURCES,
    e5s1_tensors,
    tiny_e5s1,
    tiny_real_benchmark,
)
from fsf.testing._reporter_contract import ReporterContract
from fsf.testing._task_contract import TaskContract

__all__ = [
    "HUB_REPOS",
    "NER_TAGS",
    "TINY_E5S1",
    "TINY_PIECES",
    "TINY_SOURCES",
    "XNLI_LABELS",
    "PolicyContract",
    "ReporterContract",
    "TaskContract",
    "e5s1_tensors",
    "hub_mirror",
    "pair_dataset",
    "qa_dataset",
    "tagging_dataset",
    "tiny_e5s1",
    "tiny_model",
    "tiny_real_benchmark",
    "tiny_tokenizer",
]
