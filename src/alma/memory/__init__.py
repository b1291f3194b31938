"""Memory designs: the contract, the toolkit they may use, and the reference designs."""

from alma.memory.base import MemoryDesign
from alma.memory.toolkit import Toolkit

__all__ = ["MemoryDesign", "Toolkit"]
