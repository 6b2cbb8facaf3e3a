"""The E5S1 reader: known weights round-trip exactly, every malformed file is one clear error,
and the dequantised encoder loads in transformers with the file's exact weights."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from fsf.real.e5s1 import E5S1Error, dequantize_q4_0, quantize_q4_0, read_e5s1, write_e5s1
from fsf.testing import TINY_E5S1, TINY_PIECES, e5s1_tensors

HEADER = TINY_E5S1
PIECES = TINY_PIECES
_tensors = e5s1_tensors


@pytest.fixture()
def model_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    tensors = _tensors()
    scores = np.linspace(0, -5, len(PIECES)).astype(np.float32)
    path = write_e5s1(
        tmp_path / "m.bin", HEADER, PIECES, scores, tensors, normalization={0x3000: (0x20,), 1: ()}
    )
    return path, tensors


def test_known_weights_round_trip_exactly(model_file):
    path, tensors = model_file
    model = read_e5s1(path)
    assert model.header == HEADER
    assert model.pieces == PIECES
    assert model.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert model.normalization == {0x3000: (0x20,), 1: ()}
    assert set(model.tensors) == set(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(model.tensors[name], value, err_msg=name)


def test_q4_0_layout_low_nibble_first_then_high():
    """Byte j holds weight j (low nibble) and weight j + 16 (high nibble), as e5.c's deq_row."""
    scale = np.float16(0.5).tobytes()
    qs = bytes((j % 16) | (((15 - j) % 16) << 4) for j in range(16))
    weights = dequantize_q4_0(scale + qs, 1, 32)[0]
    np.testing.assert_array_equal(weights[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_array_equal(weights[16:], (15 - np.arange(16) - 8) * 0.5)


def test_quantize_rounds_other_weights_to_the_nearest_level():
    w = np.random.default_rng(1).normal(size=(4, 64)).astype(np.float32)
    back = dequantize_q4_0(quantize_q4_0(w), 4, 64)
    step = np.abs(w.reshape(-1, 32)).max(axis=1) / 8  # |d|: the peak is level -8
    error = np.abs(back - w).reshape(-1, 32)
    assert np.all(error <= step[:, None] * 1.001)  # a full step only where level +8 clips to 7
    assert np.mean(error <= step[:, None] * 0.501) > 0.95


def test_wrong_magic_names_the_file_and_the_magic(tmp_path: Path, model_file):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + model_file[0].read_bytes()[4:])
    with pytest.raises(E5S1Error) as err:
        read_e5s1(bad)
    assert str(bad) in str(err.value) and "expected the magic b'E5S1'" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("keep", [3, 20, 60, 200, 0.5, 0.999])
def test_truncated_file_is_named(tmp_path: Path, model_file, keep):
    data = model_file[0].read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[:n])
    with pytest.raises(E5S1Error) as err:
        read_e5s1(cut)
    message = str(err.value)
    assert str(cut) in message and ("truncated" in message or "magic" in message)


def _patch_header(path: Path, field: int, value: int) -> None:
    """Overwrite the i32 header field `field` (0 = hidden, 1 = layers, 2 = heads, 3 = ffn,
    4 = vocab, 5 = positions, 6 = types)."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, 8 + 4 * field, value)
    path.write_bytes(bytes(data))


def test_tensor_shape_disagreeing_with_the_header(model_file):
    path, _ = model_file
    _patch_header(path, 3, 256)  # the header says FFN 256, the tensors hold 128
    with pytest.raises(E5S1Error) as err:
        read_e5s1(path)
    assert "l0.fi.w" in str(err.value) and "expects" in str(err.value)


def test_layer_count_disagreeing_with_the_directory(model_file):
    path, _ = model_file
    _patch_header(path, 1, 3)
    with pytest.raises(E5S1Error, match="expected 53 for 3 layers"):
        read_e5s1(path)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [(0, 0, "hidden = 0"), (1, -1, "layers = -1"), (4, 2**31 - 1, "vocab"), (2, 5, "divide")],
)
def test_impossible_header_values(model_file, field, value, match):
    path, _ = model_file
    _patch_header(path, field, value)
    with pytest.raises(E5S1Error, match=match):
        read_e5s1(path)


def test_wrong_version(model_file):
    path, _ = model_file
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, 2)
    path.write_bytes(bytes(data))
    with pytest.raises(E5S1Error, match="expected format version 1, found 2"):
        read_e5s1(path)


def test_unreadable_file_is_one_line(tmp_path: Path):
    with pytest.raises(E5S1Error, match="cannot read the model file"):
        read_e5s1(tmp_path / "missing.bin")


def test_dequantised_encoder_loads_in_transformers_with_the_files_weights(tmp_path: Path):
    """A BertModel whose weights Q4_0 stores exactly, written as E5S1 under the engine's
    names, converted back: same parameters, same hidden states."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    from fsf.real.encoder import bert_state_dict, save_encoder

    config = BertConfig(
        vocab_size=HEADER.vocab,
        hidden_size=HEADER.hidden,
        num_hidden_layers=HEADER.layers,
        num_attention_heads=HEADER.heads,
        intermediate_size=HEADER.ffn,
        max_position_embeddings=HEADER.positions,
        type_vocab_size=HEADER.types,
        layer_norm_eps=HEADER.eps,
        pad_token_id=1,
    )
    reference = BertModel(config, add_pooling_layer=False).eval()
    path = write_e5s1(
        tmp_path / "m.bin", HEADER, PIECES, np.zeros(len(PIECES), np.float32), _tensors(3)
    )
    model = read_e5s1(path)
    state = {k: torch.from_numpy(v.copy()) for k, v in bert_state_dict(model).items()}
    reference.load_state_dict(state, strict=True)
    out = save_encoder(model, tmp_path / "hf", "---\nlicense: mit\n---\n# test\n")
    loaded = AutoModel.from_pretrained(out).eval()
    for name, value in state.items():
        assert torch.equal(loaded.state_dict()[name], value), name
    ids = torch.tensor([[0, 4, 5, 6, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        a = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        b = loaded(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(a, b)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok("a b")["input_ids"] == [0, 4, 5, 2]
