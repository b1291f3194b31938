"""The meta-learning loop, its bookkeeping and its choices.

``loop`` runs the search. ``archive`` keeps every memory design of a run (code, lineage, status,
linked evaluations, analyses, verification attempts, parent selections, loop state) in the run
database, one transaction per write, so a run survives ``kill -9`` and resumes where it stopped;
``archive_records`` holds its tables and the records it reads back. ``selection`` picks the next
parents from the archive: ALMA's score-and-visits softmax by default, or any selector registered
in the ``alma.selectors`` entry-point group, each drawing from one checkpointable RNG.
``meta_agent`` is the meta agent; ``proposal`` the schemas and parsing of its answers,
``episode_sample`` the sample of episodes it reads, ``reference`` the contract text it shows.
"""
