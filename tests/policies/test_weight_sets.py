import pytest
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from fsf.errors import ConfigError
from fsf.policies import (
    ArchitecturePatterns,
    LayerRange,
    Unit,
    UnmappableModelError,
    WeightSetsConfig,
    default_ranges,
    map_parameters,
)


def _xlmr(layers: int):
    cfg = XLMRobertaConfig(
        vocab_size=50,
        hidden_size=8,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=20,
    )
    return XLMRobertaForSequenceClassification(cfg)


def _bert(layers: int):
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=8,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=16,
    )
    return BertForSequenceClassification(cfg)


@pytest.mark.parametrize("build", [_xlmr, _bert])
@pytest.mark.parametrize("layers", [1, 12, 24])
def test_every_parameter_is_placed(build, layers):
    model = build(layers)
    pmap = map_parameters(
        [n for n, _ in model.named_parameters()], num_layers=model.config.num_hidden_layers
    )
    assert pmap.num_layers == layers
    prefix = "roberta" if build is _xlmr else "bert"
    u = pmap.units
    for i in range(layers):
        lay = f"{prefix}.encoder.layer.{i}"
        for name in (
            "attention.self.query.weight",
            "attention.self.value.bias",
            "attention.output.dense.weight",
            "attention.output.LayerNorm.weight",
        ):
            assert u[f"{lay}.{name}"] == Unit(i + 1, "attention")
        for name in ("intermediate.dense.weight", "output.dense.weight", "output.LayerNorm.bias"):
            assert u[f"{lay}.{name}"] == Unit(i + 1, "ffn")
    assert u[f"{prefix}.embeddings.word_embeddings.weight"] == Unit.embeddings()
    head = [n for n, unit in u.items() if unit == Unit.head()]
    assert head and all(n.startswith(("classifier", "bert.pooler")) for n in head)
    # every unit of every layer has parameters: attention and ffn
    for i in range(1, layers + 1):
        assert pmap.names_in(Unit(i, "attention")) and pmap.names_in(Unit(i, "ffn"))


def test_unmappable_model_lists_the_names_and_custom_patterns_fix_it():
    model = GPT2ForSequenceClassification(GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=50))
    names = [n for n, _ in model.named_parameters()]
    with pytest.raises(UnmappableModelError) as err:
        map_parameters(names)
    assert "transformer.h.0.attn.c_attn.weight" in str(err.value)
    assert "model.patterns" in str(err.value)
    patterns = ArchitecturePatterns(
        layer=r"^transformer\.h\.(?P<index>\d+)\.",
        attention=r"^(attn|ln_1)\.",
        ffn=r"^(mlp|ln_2)\.",
        embeddings=r"^transformer\.(wte|wpe)\.",
        head=r"^(score|transformer\.ln_f)\.",
    )
    pmap = map_parameters(names, patterns, num_layers=2)
    assert pmap.units["transformer.h.1.mlp.c_fc.weight"] == Unit(2, "ffn")
    assert pmap.units["transformer.h.0.ln_1.weight"] == Unit(1, "attention")


@pytest.mark.parametrize(
    ("layers", "s1", "s2", "v"),
    [
        (12, (1, 10), (1, 4), (11, 12)),
        (24, (1, 20), (1, 8), (21, 24)),
        (6, (1, 5), (1, 2), (6, 6)),
        (4, (1, 3), (1, 1), (4, 4)),
        (2, (1, 1), (1, 1), (2, 2)),
    ],
)
def test_default_ranges_scale_with_depth(layers, s1, s2, v):
    r = default_ranges(layers)
    assert (r["S_I"].first, r["S_I"].last) == s1
    assert (r["S_II"].first, r["S_II"].last) == s2
    assert (r["V_I"].first, r["V_I"].last) == v == (r["V_II"].first, r["V_II"].last)


def test_sets_membership_for_12_layers():
    sets = WeightSetsConfig().resolve(12)
    assert sets.membership(Unit(3, "ffn")) == {"S_I", "S_II"}
    assert sets.membership(Unit(3, "attention")) == {"S_I"}
    assert sets.membership(Unit(5, "ffn")) == {"S_I"}
    assert sets.membership(Unit(11, "attention")) == {"V_I", "V_II"}
    assert sets.membership(Unit(12, "ffn")) == {"V_I"}
    assert sets.membership(Unit.embeddings()) == frozenset()


def test_configured_ranges_and_their_errors():
    cfg = WeightSetsConfig(s1="1-8", s2=[1, 2], v1="none", v2=12)
    sets = cfg.resolve(12)
    assert sets.ranges["S_I"] == LayerRange(first=1, last=8)
    assert sets.ranges["V_I"] is None
    assert sets.membership(Unit(12, "attention")) == {"V_II"}
    with pytest.raises(ConfigError) as err:
        WeightSetsConfig(s1="1-14", v1="9-7").resolve(12)
    text = str(err.value)
    assert "policy.sets.s1" in text and "1-14" in text and "policy.sets.v1" in text
    with pytest.raises(ValueError, match="layer range"):
        WeightSetsConfig(s1="first ten")
