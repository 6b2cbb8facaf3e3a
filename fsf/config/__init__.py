"""The typed run config shared by `fsf-train` and `fsf-sweep`: one object per training run.

A YAML key maps to a field here, and from there to the optimizer's param groups in a few hops:
`policy.c1` -> `PolicyConfig.c1` -> `RulePolicy.multipliers` -> `param_group["lr"]`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fsf.errors import ConfigError, Problem, problems_from_pydantic, short_repr
from fsf.policies.config import PolicyConfig
from fsf.policies.weight_sets import MAX_LAYERS
from fsf.strict import Seed, StrictModel
from fsf.tasks.config import TaskConfig
from fsf.tasks.settings import EvalSplit, ModelConfig
from fsf.yamlfile import load_yaml, read_yaml

__all__ = [
    "LANGUAGE_PATTERN",
    "MAX_BATCH",
    "MAX_EPOCHS",
    "MAX_LANGUAGES",
    "MAX_STEPS",
    "NAME_PATTERN",
    "AnalysisConfig",
    "CheckpointConfig",
    "CheckpointRule",
    "CkaConfig",
    "DeepSpeedConfig",
    "EvalConfig",
    "FewShotConfig",
    "FolderName",
    "Language",
    "OptimConfig",
    "ProbeConfig",
    "RunConfig",
    "apply_overrides",
    "check_name",
    "load_run_config",
    "parse_overrides",
    "validate_run_config",
]

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
"""Names that become a folder (a run's `name`, a sweep's `name`): letters, digits, `_`, `.`,
`-`, not starting with `.` or `-` (so never `.`, `..` or hidden), at most 128 characters."""


def check_name(value: Any) -> str | None:
    """What is wrong with a name that becomes a folder (`NAME_PATTERN`), or None."""
    import re

    if isinstance(value, str) and re.fullmatch(NAME_PATTERN, value):
        return None
    return (
        "must be a plain folder name: letters, digits, '_', '.' and '-', not starting with "
        "'.' or '-', at most 128 characters (no '/', no '..')"
    )


def _folder_name(value: str) -> str:
    problem = check_name(value)
    if problem:
        raise ValueError(problem)
    return value


FolderName = Annotated[str, AfterValidator(_folder_name)]
"""A `str` field that becomes a folder: validated against `NAME_PATTERN`."""

LANGUAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
"""A language code (`en`, `zh-yue`, `PAN-X.de`-style names are templates, not codes): letters,
digits, `_`, `.` and `-`, at most 32 characters. Codes name files (`test-<lang>.tsv`) and
are printed in tables, so they hold no path separator and no control character."""

MAX_LANGUAGES = 256
"""The most target languages a run evaluates (WikiANN, the largest benchmark, has 176)."""

MAX_STEPS = 10**9
"""The most optimizer steps (and evaluation / measurement intervals) a run may ask for."""

MAX_EPOCHS = 10_000
"""The most epochs a run may ask for."""

MAX_BATCH = 2**20
"""The largest batch (and gradient accumulation) a run may ask for."""


def _language(value: str) -> str:
    import re

    if not re.fullmatch(LANGUAGE_PATTERN, value):
        raise ValueError(
            "a language code is letters, digits, '_', '.' and '-' (at most 32 characters, "
            "starting with a letter or digit), e.g. 'en' or 'zh-yue'"
        )
    return value


Language = Annotated[str, AfterValidator(_language)]
"""A `str` field holding a language code (`LANGUAGE_PATTERN`)."""


#: the splits a run evaluates unless its task says otherwise (XQuAD: test only)
_EVAL_SPLITS: tuple[EvalSplit, ...] = ("dev", "test")


class _Strict(StrictModel):
    """Unknown keys refused; every number finite and in range (`fsf.strict`)."""


class OptimConfig(_Strict):
    """AdamW with linear warm-up then linear decay; the policy multiplies on top of this lr."""

    lr: float = Field(2e-3, gt=0, description="peak lr (default suits the tiny encoder)")
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.9,
        0.999,
    )
    eps: float = Field(1e-8, gt=0)
    batch_size: int = Field(32, ge=1, le=MAX_BATCH, description="global batch per optimizer step")
    grad_accum: int = Field(1, ge=1, le=MAX_BATCH)
    epochs: float = Field(3.0, gt=0, le=MAX_EPOCHS)
    max_steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="overrides epochs")
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    grad_clip: float | None = Field(1.0, gt=0)
    group_by_length: bool = Field(
        False,
        description="batch examples of similar length together (as Trainer's group_by_length): "
        "less padding, every example once per epoch; off by default: it changes which examples "
        "share a batch, and on the embedded benchmark it moved dev target accuracy by -2.0 "
        "+- 3.6 points (3 paired seeds; docs/benchmarks.md, benchmark 8)",
    )
    adamw: Literal["fused", "torch", "for-loop", "foreach", "deepspeed-cpu"] = Field(
        "fused",
        description="AdamW implementation: torch's fused kernel; torch's own choice (for-loop "
        "on CPU, foreach on GPU), its for-loop or foreach (multi-tensor) code; or DeepSpeed's "
        "CPU Adam (CPU and engine deepspeed only; compiles a C++ op on first use). "
        "docs/benchmarks.md (benchmark 8) measures them",
    )
    embedding_update: Literal["auto", "rows", "dense"] = Field(
        "auto",
        description="how AdamW updates the word embedding: 'rows' takes its gradient as the rows "
        "a batch read and updates only rows read so far (dense AdamW's arithmetic: rows never "
        "read owe only weight decay; fsf.train._rows), 'dense' as every other weight; 'auto' is "
        "rows on CPU for one rank without ZeRO, fused AdamW and a vocabulary of >= 32k rows "
        "(25% of an XLM-R-base step on CPU; docs/benchmarks.md, benchmark 8), else dense",
    )


class EvalConfig(_Strict):
    every_steps: int = Field(50, ge=1, le=MAX_STEPS)
    batch_size: int = Field(128, ge=1, le=MAX_BATCH)
    at_start: bool = Field(True, description="also evaluate before the first update")
    splits: list[EvalSplit] = Field(
        default_factory=lambda: list(_EVAL_SPLITS),
        description="default: the task's (dev and test; XQuAD: test only)",
    )
    predictions: bool = Field(
        False,
        description="write XTREME prediction files of the test split for the selected "
        "checkpoint: <run>/predictions/<task>/test-<lang>.tsv|json",
    )


CheckpointRule = Literal["source-dev", "target-dev", "all-dev"]
"""How a run's selected checkpoint is chosen (`checkpoint.select`, a sweep's
`search.checkpoint`): the evaluation with the best source-language dev score (zero-shot
honest), the best mean target-language dev score, or the best mean dev score over all
languages; what each means is `fsf.results.selection`."""


class CheckpointConfig(_Strict):
    """Keep the fine-tuned model (`save_pretrained`: model, tokenizer, a model card and the
    run config) in `<run>/checkpoint/`.

    `best`: the selected checkpoint, the evaluation `select` chooses (ties: the earlier
    step; a run that evaluates no dev split, as XQuAD, selects its final step); `final`: the
    model after the last step; `none` (default; sweeps keep none unless their base or a
    stage sets it). The prediction files (`eval.predictions`) are of the same evaluation."""

    save: Literal["none", "best", "final"] = "none"
    select: CheckpointRule = Field(
        "source-dev",
        description="which evaluation is the selected checkpoint: the best source-language "
        "dev score, mean target dev score, or mean dev score over all languages (in a sweep, "
        "its search.checkpoint sets it)",
    )
    license: str | None = Field(
        None,
        description="licence of the kept model, as its model card states it (a Hub licence "
        "id such as mit or apache-2.0); default: the base model's, read from its local model "
        "card (the embedded encoder: apache-2.0, fsf's), else `other` with a note",
    )


class FewShotConfig(_Strict):
    """M labelled examples per target language, moved from its dev split into training."""

    m: int = Field(0, ge=0)
    seed: Seed = 0


#: DeepSpeed config keys fsf derives from the run config -> the run-config key to set instead
_DS_DERIVED = {
    "train_batch_size": "optim.batch_size",
    "train_micro_batch_size_per_gpu": "optim.batch_size and the number of workers",
    "gradient_accumulation_steps": "optim.grad_accum",
}
#: DeepSpeed config sections that are mappings
_DS_SECTIONS = (
    "zero_optimization",
    "fp16",
    "bf16",
    "amp",
    "optimizer",
    "scheduler",
    "activation_checkpointing",
    "flops_profiler",
    "comms_logger",
    "tensorboard",
    "wandb",
    "csv_monitor",
    "aio",
    "checkpoint",
    "data_types",
    "torch_autocast",
    "compile",
)


class DeepSpeedConfig(_Strict):
    zero_stage: Literal[0, 1, 2] = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="auto: bf16 on GPUs that support it, fp32 on CPU; bf16 on CPU is "
        "autocast (fp32 weights, bf16 matrix products: fast on CPUs with AMX); fp16 needs a GPU",
    )
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="merged into the DeepSpeed config as is; its sections (zero_optimization, "
        "optimizer, ...) are mappings, and what fsf derives from the run config (batch sizes, "
        "ZeRO stage, precision) is set there instead",
    )

    @field_validator("extra")
    @classmethod
    def _extra(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """The shape DeepSpeed reads (the values themselves are DeepSpeed's to check: `fsf
        validate` and the worker hand the merged config to DeepSpeed's own parser first)."""
        problems = []
        for key, instead in _DS_DERIVED.items():
            if key in value:
                problems.append(f"{key} is set by fsf from {instead}; set that instead")
        for key in _DS_SECTIONS:
            if key in value and not isinstance(value[key], dict):
                problems.append(
                    f"{key} must be a mapping (DeepSpeed's {key} section), got "
                    f"{type(value[key]).__name__} {short_repr(value[key], 40)}"
                )
        zero = value.get("zero_optimization")
        if (
            isinstance(zero, dict)
            and "stage" in zero
            and zero["stage"] != info.data.get("zero_stage", zero["stage"])
        ):
            problems.append(
                f"zero_optimization.stage {short_repr(zero['stage'], 20)} differs from "
                "deepspeed.zero_stage; set deepspeed.zero_stage instead"
            )
        for key in ("fp16", "bf16"):
            if isinstance(value.get(key), dict) and "enabled" in value[key]:
                problems.append(f"{key}.enabled is set by fsf from deepspeed.precision; set that")
        if problems:
            raise ValueError("; ".join(problems))
        return value


class ProbeConfig(_Strict):
    """A layer probe (`fsf-sweep probe`, docs/analysis.md): before fine-tuning, re-initialise or
    freeze one part of one layer. `action: none` (the default) is plain fine-tuning.

    reinit: the part's Linear weights ~ N(0, initializer_range), biases 0, LayerNorms 1/0 (the
    BERT/XLM-R initialisation). freeze: the part's weights get no gradient and no optimizer
    state. Parts follow the weight-set units: `attention` (self-attention with its output
    projection and LayerNorm), `ffn` (intermediate + output dense and LayerNorm), `all`.
    """

    action: Literal["none", "reinit", "freeze"] = "none"
    layer: int | None = Field(
        None, ge=1, le=MAX_LAYERS, description="1-based layer (1 = nearest the embeddings)"
    )
    part: Literal["all", "attention", "ffn"] = "all"

    @model_validator(mode="after")
    def _needs_layer(self) -> ProbeConfig:
        if self.action != "none" and self.layer is None:
            raise ValueError(f"probe.action={self.action} needs probe.layer (1-based)")
        return self


class CkaConfig(_Strict):
    """Forgetting by linear CKA between the pretrained and the current model's hidden states.

    Every `every_steps` updates (and before the first and after the last), the first
    `probe_size` examples of each language's `split` (a fixed probe batch) go through the
    model; per layer (0 = embeddings), the pooled hidden states are compared with those of the
    pretrained model, computed once before training. Stored as result rows with
    split="cka", metric="cka_layer_{i}".
    """

    every_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="measure every N optimizer steps; 0 = off"
    )
    probe_size: int = Field(64, ge=2, description="examples per language in the probe batch")
    split: Literal["dev", "test"] = Field("dev", description="where the probe batch comes from")
    languages: list[Language] | None = Field(
        None, max_length=MAX_LANGUAGES + 1, description="default: every run language"
    )
    pooling: Literal["mean", "first"] = Field(
        "mean", description="mean over tokens (mask-aware), or the first token (<s>/[CLS])"
    )
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="probe examples per forward pass")


class AnalysisConfig(_Strict):
    """What a run records for analysis (docs/analysis.md), beyond its evaluations."""

    loss_curve: bool = Field(
        True, description="record every step's training loss (rows with split=train)"
    )
    cka: CkaConfig = Field(default_factory=CkaConfig)


class RunConfig(_Strict):
    """Everything one training run needs."""

    name: FolderName = Field("run", description="the run's folder under output_dir (NAME_PATTERN)")
    seed: Seed = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(
        default_factory=lambda: TaskConfig(
            name="classification", dataset="synthetic:topic", text_fields=["text"], num_labels=4
        ),
        description="default: the embedded synthetic topic benchmark",
    )
    source_lang: Language = "en"
    target_langs: list[Language] = Field(
        default_factory=lambda: ["fk", "fr", "ja", "cy", "sw", "ur"],
        max_length=MAX_LANGUAGES,
        description="default: the embedded benchmark's six target languages (at most "
        f"{MAX_LANGUAGES})",
    )
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    few_shot: FewShotConfig = Field(default_factory=FewShotConfig)
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    output_dir: str = "runs"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    engine: Literal["deepspeed", "torch"] = Field(
        "deepspeed",
        description="deepspeed: a DeepSpeed engine (any ZeRO stage, any number of ranks); torch: "
        "plain PyTorch, one rank only (no DeepSpeed needed; bf16 by autocast)",
    )

    @model_validator(mode="after")
    def _languages(self) -> RunConfig:
        if not self.target_langs:
            raise ValueError("target_langs must name at least one language")
        if self.source_lang in self.target_langs:
            raise ValueError(
                f"target_langs must not contain the source language {self.source_lang!r}"
            )
        if len(set(self.target_langs)) != len(self.target_langs):
            raise ValueError(f"target_langs has duplicates: {self.target_langs}")
        return self

    @model_validator(mode="after")
    def _eval_splits(self) -> RunConfig:
        """Unset `eval.splits` -> the task's (XQuAD has no dev split)."""
        if "splits" not in self.eval.model_fields_set:
            from fsf.tasks import task_class

            self.eval.splits = list(task_class(self.task.name).eval_splits)
        return self

    @model_validator(mode="after")
    def _policy_iv(self) -> RunConfig:
        """Unset `policy.policy_iv` -> the task's default (off for NER, as in the paper): the
        one place the effective Policy IV setting is decided; everyone reads this value."""
        if self.policy.policy_iv is None:
            from fsf.tasks import task_class

            self.policy.policy_iv = task_class(self.task.name).policy_iv_default
        return self

    @model_validator(mode="after")
    def _embedding_update(self) -> RunConfig:
        """What `optim.embedding_update: rows` needs that the config alone says (the worker
        checks the rest: one rank, an untied nn.Embedding; fsf.train._engine.row_embedding)."""
        if self.optim.embedding_update != "rows":
            return self
        if self.engine == "deepspeed" and self.deepspeed.zero_stage > 0:
            raise ValueError(
                f"optim.embedding_update=rows needs one rank without ZeRO (its gradient is "
                f"never all-reduced), got deepspeed.zero_stage={self.deepspeed.zero_stage}; "
                "use auto or dense"
            )
        if self.optim.adamw != "fused":
            raise ValueError(
                f"optim.embedding_update=rows runs fused AdamW, got optim.adamw="
                f"{self.optim.adamw}; use auto or dense, or optim.adamw: fused"
            )
        return self

    @model_validator(mode="after")
    def _artifacts(self) -> RunConfig:
        if self.eval.predictions and "test" not in self.eval.splits:
            raise ValueError(
                "eval.predictions writes the test split's predictions: add test to eval.splits"
            )
        return self

    @property
    def selection(self) -> str:
        """How the run's selected checkpoint (saved, and written as predictions) is chosen:
        `final` with `checkpoint.save: final` or when no dev split is evaluated, else
        `checkpoint.select`."""
        if self.checkpoint.save == "final" or "dev" not in self.eval.splits:
            return "final"
        return self.checkpoint.select

    @property
    def keeps_artifacts(self) -> bool:
        """Whether the run writes prediction files or a checkpoint."""
        return self.eval.predictions or self.checkpoint.save != "none"

    @model_validator(mode="after")
    def _cka_languages(self) -> RunConfig:
        unknown = sorted(set(self.analysis.cka.languages or []) - set(self.languages))
        if unknown:
            raise ValueError(
                f"analysis.cka.languages {unknown} are not run languages {self.languages}"
            )
        return self

    @property
    def languages(self) -> list[str]:
        return [self.source_lang, *self.target_langs]

    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """`key.sub=value` strings -> (dotted key, YAML-parsed value)."""
    out = []
    problems = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem("--set", "expected key=value, e.g. policy.c1=0.1", item, True))
            continue
        try:
            value = load_yaml(raw, f"--set {key.strip()}") if raw.strip() else None
        except ConfigError as exc:
            if not isinstance(exc.__cause__, yaml.YAMLError):
                raise  # a bomb or a duplicate key, not merely a plain string
            value = raw
        out.append((key.strip(), value))
    if problems:
        raise ConfigError(problems)
    return out


def apply_overrides(data: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy); intermediate dicts are created as needed."""
    data = copy.deepcopy(data)
    for key, value in overrides:
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def validate_run_config(data: Any, source: str | None = None, prefix: str = "") -> RunConfig:
    """Build a RunConfig, raising one ConfigError that lists every problem."""
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(prefix, "expected a mapping of run settings", data, True)], source
        )
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from_pydantic(exc, prefix), source) from None


def load_run_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a run config YAML (or the defaults when `path` is None) and apply `--set` items."""
    data: Any = {}
    source = None
    if path is not None:
        source = str(path)
        data = read_yaml(path) or {}
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(
                [Problem("", "expected a mapping of run settings", data, True)], source
            )
        data = apply_overrides(data, parse_overrides(overrides))
    return validate_run_config(data, source)
