"""The ``minihack`` domain: NetHack mazes, corridors and quests from MiniHack, in text.

Six MiniHack environments as BALROG uses them (MazeWalk-9x9, MazeWalk-15x15, Corridor-R3,
CorridorBattle-Dark, Quest-Easy, Quest-Medium), each task one NetHack seed, so a task id is always
the same level. Train and in-distribution tasks share four families on disjoint seeds; the
out-of-distribution split holds MazeWalk-15x15 and Quest-Medium, never seen in training.
Observations are the language wrapper's text (message, what is seen and where, status) with a
cropped map; actions are named ("north", "kick", "zap") and, while the game asks a question or
shows a menu, the possible answers.

Needs ``balrog-nle`` (which provides the ``nle`` module) and ``minihack`` installed without its
own ``nle`` requirement; importing this package does not import either: a game is created only
when an environment is made.
"""

from alma.domains.minihack.domain import MiniHackDomain

__all__ = ["MiniHackDomain"]
