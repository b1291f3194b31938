"""The built-in ``babaisai`` domain: Baba Is You puzzles whose rules are tiles on the map.

A level is a small grid holding objects (baba, walls, balls, keys, doors) and rule tiles. Lines
of tiles such as ``BABA IS YOU`` or ``KEY IS WIN`` are the rules in force; pushing a tile in or out
of a line rewrites them. The level is won when an object that is `you` reaches an object that is
`win`, and lost when no object is `you` any more. Actions: ``idle``, ``up``, ``right``, ``down``,
``left``; 20 steps per episode.

Where it comes from: the rules, the 40 level families and the way the game is shown to a language
model follow BabaIsAI (Cloos et al., "Baba Is AI: Break the Rules to Beat the Benchmark", 2024;
github.com/nacloos/baba-is-ai, MIT licence) and BALROG's text wrapper for it
(github.com/balrog-ai/BALROG, MIT licence). No code is taken from either: the engine
(:mod:`.engine`), the level generators (:mod:`.families`), the solver (:mod:`.solver`) and the text
(:mod:`.observation`) are written for alma from the published rules. Differences: several pieces
may share a cell (the original shows only the top one), `defeat` is the property the original
calls `lose`, objects carry no colour rules, the map's edges are stated in the observation, and
levels are smaller (a 6 x 6 room, or two 4 x 7 rooms) so that each one is proven solvable within
the 20-step limit by a breadth-first search.

Every task's level is checked solvable: the solver's shortest plan length is in
``Task.params["optimal_steps"]``; a draw with no plan is replaced by the next draw of the same seed
and the replacement recorded (see :mod:`.catalogue`). :meth:`BabaIsAIDomain.solve` gives the plan
and :meth:`BabaIsAIEnv.render` an ASCII drawing.
"""

from alma.domains.babaisai.domain import HELD_OUT, IN_DISTRIBUTION, BabaIsAIDomain
from alma.domains.babaisai.env import BabaIsAIEnv
from alma.domains.babaisai.families import FAMILIES

__all__ = ["FAMILIES", "HELD_OUT", "IN_DISTRIBUTION", "BabaIsAIDomain", "BabaIsAIEnv"]
