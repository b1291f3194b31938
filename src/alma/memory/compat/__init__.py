"""Designs written for the original ALMA system, run unchanged on alma's toolkit.

An imported design (see :mod:`alma.memory.alma_format`) is a small alma design that carries the
original source and subclasses :class:`OriginalDesign`; it runs in the sandbox worker like any
design. This layer gives the original source the interface it imports: ``MemoStructure``,
``Sub_memo_layer`` and ``Basic_Recorder`` (:mod:`.interface`), the ``Agent`` and ``Embedding``
helpers routed to the toolkit (:mod:`.models`), and the adapter between the two contracts
(:mod:`.adapter`).
"""

from alma.memory.compat.adapter import PROVIDED, OriginalDesign, load_original

__all__ = ["PROVIDED", "OriginalDesign", "load_original"]
