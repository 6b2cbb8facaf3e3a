"""An E5S1 model as a Hugging Face `BertModel` folder (safetensors, config, tokenizer, card).

multilingual-e5-small is a BERT encoder (post-LayerNorm, GELU, absolute positions from 0,
token types) with XLM-R's vocabulary; the E5S1 file holds every weight the encoder needs and
no pooler or MLM head. The folder loads with `AutoModel` / `AutoTokenizer`; a classification
model built from it gets a new pooler and classifier (randomly initialised, as any fine-tuning
of this checkpoint would).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fsf.real.e5s1 import E5S1
from fsf.real.tokenizer import build_tokenizer, save_tokenizer

__all__ = ["bert_state_dict", "save_encoder"]

_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def bert_state_dict(model: E5S1) -> dict[str, np.ndarray]:
    """The E5S1 tensors under `BertModel`'s parameter names (Linear weights are `(out, in)`,
    as the file stores them)."""
    out = {_EMBEDDINGS[name]: model.tensors[name] for name in _EMBEDDINGS}
    for layer in range(model.header.layers):
        for short, long in _LAYER_NAMES.items():
            out[f"encoder.layer.{layer}.{long}"] = model.tensors[f"l{layer}.{short}"]
    return out


def _config(model: E5S1) -> dict:
    h = model.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.positions,
        "type_vocab_size": h.types,
        "layer_norm_eps": h.eps,
        "initializer_range": 0.02,
        "pad_token_id": model.special["pad"],
        "bos_token_id": model.special["bos"],
        "eos_token_id": model.special["eos"],
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def save_encoder(model: E5S1, out: str | Path, card: str) -> Path:
    """Write `out/` as a Hugging Face model folder: `config.json`, `model.safetensors`, the
    tokenizer files and `README.md` (`card`). `out` must not exist yet or be empty."""
    import torch
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(model).items()
    }
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(_config(model), indent=2) + "\n")
    tok = build_tokenizer(model.pieces, model.scores, unk_id=model.special["unk"])
    save_tokenizer(tok, out, model_max_length=model.header.positions)
    (out / "README.md").write_text(card)
    return out
