"""Every built-in task runs the task contract suite (fsf.testing.TaskContract): the named
tasks by their hub names (read from a local mirror laid out like the hub repositories), the
generic ones on the same files."""

from __future__ import annotations

import pytest

from fsf.config import validate_run_config
from fsf.tasks import build_task, task_names
from fsf.tasks.data import HUB_MIRROR_ENV
from fsf.testing import TaskContract, hub_mirror

GENERIC = {
    "classification": {
        "dataset": "google-research-datasets/paws-x",
        "text_fields": ["sentence1", "sentence2"],
        "num_labels": 2,
    },
    "tagging": {"dataset": "unimelb-nlp/wikiann"},
    "qa": {
        "dataset": "google/xquad",
        "config_name": "xquad.{lang}",
        "splits": {"test": "validation"},
    },
}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return hub_mirror(tmp_path_factory.mktemp("hub"), sizes=(8, 6, 6))


class TestBuiltinTasks(TaskContract):
    @pytest.fixture(params=task_names())
    def task(self, request, mirror, monkeypatch):
        monkeypatch.setenv(HUB_MIRROR_ENV, str(mirror))
        task = dict(GENERIC.get(request.param, {}), name=request.param)
        if "dataset" in task:  # a generic task reads the mirror's folder as a local dataset
            task["dataset"] = str(mirror / task["dataset"])
        config = validate_run_config(
            {"task": task, "model": {"max_length": 64}, "target_langs": ["de"]}
        )
        return build_task(config.task, config.model)

    @pytest.fixture()
    def model_dir(self, assets):
        return assets["xlmr"]


class TestABrokenTaskFails:
    """The suite catches what it is there to catch: features out of order, a batch whose
    attention mask covers the padding."""

    @pytest.fixture()
    def pawsx(self, mirror, monkeypatch):
        monkeypatch.setenv(HUB_MIRROR_ENV, str(mirror))
        return validate_run_config({"task": {"name": "pawsx"}, "model": {"max_length": 64}})

    def test_features_out_of_order_are_caught(self, pawsx, assets):
        from fsf.tasks import PawsXTask

        class Reversing(PawsXTask):
            def encode(self, examples, tokenizer):
                return super().encode(examples, tokenizer)[::-1]

        with pytest.raises(AssertionError, match="in order"):
            TaskContract().test_encode_keeps_order(
                Reversing(pawsx.task, pawsx.model), assets["xlmr"]
            )

    def test_a_mask_over_padding_is_caught(self, pawsx, assets):
        import torch

        from fsf.tasks import PawsXTask

        class Unmasked(PawsXTask):
            def collate(self, features, pad_id):
                batch = super().collate(features, pad_id)
                return {**batch, "attention_mask": torch.ones_like(batch["attention_mask"])}

        with pytest.raises(AssertionError, match="mask of row"):
            TaskContract().test_collate_pads(Unmasked(pawsx.task, pawsx.model), assets["xlmr"])
