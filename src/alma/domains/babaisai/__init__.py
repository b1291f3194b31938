"""The built-in ``babaisai`` domain: Baba Is You puzzles whose rules are tiles on the map.

A level is a small grid holding objects (baba, walls, balls, keys, doors) and rule tiles. Lines
of tiles such as ``BABA IS YOU`` or ``KEY IS WIN`` are the rules in force; pushing a tile in or out
of a line rewrites them. Actions: ``idle``, ``up``, ``right``, ``down``, ``left``; 20 steps per
episode. The rules, the 40 level families and the text shown to a language model come from
BabaIsAI (Cloos et al., "Baba Is AI: Break the Rules to Beat the Benchmark", 2024;
github.com/nacloos/baba-is-ai, MIT licence) and BALROG's text wrapper for it
(github.com/balrog-ai/BALROG, MIT licence). No code is taken from either; everything here is
written for alma from the published rules and checked against episodes recorded from the
originals.

Two variants (``[domains.babaisai] variant = ...``):

- ``balrog`` (the default) is the benchmark's game, step for step: the original engine's rules
  (:mod:`.balrog_engine`: stacks of pieces read and pushed from the top, win read on the top of
  the destination before the move, ``X is Y`` putting a new object on top), its level
  generators with its placement ranges and random draws (:mod:`.balrog_levels`), BALROG's text
  with its quirks (:mod:`.balrog_text`). Levels are kept as drawn; those with no plan within
  the step limit are labelled (``optimal_steps`` None, :mod:`.balrog_catalogue`).
- ``alma`` is alma's own game (:mod:`.engine`, :mod:`.families`, :mod:`.observation`): several
  pieces share a cell and all count, smaller levels each proven winnable within the limit (a
  draw with no plan is replaced, see :mod:`.catalogue`), and a clearer text (colours, the
  object you control, the distance to the edges).

:meth:`BabaIsAIDomain.solve` gives a shortest plan (:mod:`.solver`) and the environments'
``render`` an ASCII drawing.
"""

from alma.domains.babaisai.domain import HELD_OUT, IN_DISTRIBUTION, BabaIsAIDomain
from alma.domains.babaisai.env import BabaIsAIEnv
from alma.domains.babaisai.families import FAMILIES

__all__ = ["FAMILIES", "HELD_OUT", "IN_DISTRIBUTION", "BabaIsAIDomain", "BabaIsAIEnv"]
