"""The ``alfworld`` domain: ALFWorld's household tasks, played in ALFWorld's own text engine.

An agent in a room (kitchen, living room, bedroom or bathroom) full of receptacles (cabinets,
drawers, countertops, a fridge, a microwave, a sink...) must carry out one of ALFWorld's six kinds
of task, such as "put a clean apple in fridge" or "look at alarmclock under the desklamp", with
text commands ("go to cabinet 3", "open cabinet 3", "take apple 1 from cabinet 3", ...).

Tasks come from one of two sources (see :class:`AlfWorldDomain`):

* the official ALFWorld game files, when ``$ALFWORLD_DATA`` (or ``data_dir``) points at them;
* otherwise, tasks generated here from what the ``alfworld`` package ships: AI2-THOR's floor
  plans, ALFWorld's PDDL domain and text grammar, and its goal library. Each one is checked
  solvable before use and labelled ``generated`` (task ids ``alfworld-gen-...``,
  ``Task.params["source"]``, the domain's ``details``).

Modules: :mod:`.scenes` (floor plans and object tables), :mod:`.generator` (goals, initial states,
PDDL), :mod:`.solver` (solvability checks), :mod:`.engine` (ALFWorld's engine as a TextEnv),
:mod:`.generated` and :mod:`.official` (the two task sources), :mod:`.domain` (the domain).
"""

from alma.domains.alfworld.domain import AlfWorldDomain

__all__ = ["AlfWorldDomain"]
