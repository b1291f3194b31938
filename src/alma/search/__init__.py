"""The meta-learning loop's bookkeeping and choices.

``archive`` keeps every memory design of a run (code, lineage, status, linked evaluations,
analyses, verification attempts, parent selections, loop state) in the run database, one
transaction per write, so a run survives ``kill -9`` and resumes where it stopped.
``selection`` picks the next parents from the archive: ALMA's score-and-visits softmax by default,
or greedy, uniform and novelty-aware alternatives, each drawing from one checkpointable RNG.
"""
