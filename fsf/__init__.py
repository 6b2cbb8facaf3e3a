"""fsf: Fine-tuning Slow and Fast for cross-lingual transfer, and sweeps around it."""

__version__ = "0.1.0"
