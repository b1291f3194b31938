"""The built-in ``toy`` domain: rooms, keys and locked doors, generated from a seed (see
:mod:`.domain`); :mod:`.generation` draws the games, :mod:`.env` plays them."""

from alma.domains.toy.domain import ToyDomain
from alma.domains.toy.env import ToyEnv, parse_command
from alma.domains.toy.generation import DEFAULT_PROFILE, DOMAIN_PROFILES, STEP_LIMIT

__all__ = [
    "DEFAULT_PROFILE",
    "DOMAIN_PROFILES",
    "STEP_LIMIT",
    "ToyDomain",
    "ToyEnv",
    "parse_command",
]
