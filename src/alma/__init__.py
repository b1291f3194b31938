"""alma: meta-learned memory designs for LLM agents."""

__version__ = "0.1.0"
