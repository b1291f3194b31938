"""Joining a Ray cluster, and sizing the players it can hold.

Without an address alma starts Ray on this machine; with one it joins that cluster. Each failure
is one line with a hint: Ray not installed, nothing listening at the address, or no node with
what one player asks (its episodes' CPUs and custom resources, ``[executor]``).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from alma.config import ExecutorConfig
from alma.errors import AlmaError, MissingDependencyError

ADDRESS_HINT = (
    "start a cluster with `ray start --head` (and `ray start --address=HEAD:6379` on each "
    "node), then give its address: --ray-address HOST:PORT, ray://HOST:10001 or auto"
)


class ClusterError(AlmaError):
    """The Ray cluster cannot be reached or cannot play the jobs asked of it."""


def ray_module() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "the ray executor needs Ray, which is not installed",
            hint="pip install 'alma[ray]'",
        ) from None
    return ray


def reachable(address: str) -> None:
    """Fail at once, in one line, when nothing listens at ``address`` (``ray.init`` would wait
    and then print pages)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ClusterError(
            f"cannot reach the Ray cluster at {address}: {reason}", hint=ADDRESS_HINT
        ) from None


def join(ray: Any, settings: ExecutorConfig) -> bool:
    """Connect this process to Ray (True when it started or joined here, so it leaves later)."""
    if ray.is_initialized():  # the embedding program connected already
        return False
    address = settings.address
    if address is not None and address != "auto":
        reachable(address)
    try:
        ray.init(
            address=address,
            num_cpus=settings.local_cpus if address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except ConnectionError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ClusterError(
            f"cannot reach the Ray cluster at {address}: {first}", hint=ADDRESS_HINT
        ) from None
    return True


def player_needs(settings: ExecutorConfig) -> dict[str, float]:
    """What one player reserves on its node: its episodes' CPUs and custom resources."""
    count = settings.episodes_per_player
    needs = {"CPU": settings.job_cpus * count}
    needs.update({name: amount * count for name, amount in settings.job_resources.items()})
    return needs


def capacity(nodes: list[dict[str, Any]], needs: dict[str, float]) -> int:
    """How many players the live nodes can hold."""
    total = 0
    for node in nodes:
        if not node.get("Alive", False):
            continue
        held = node.get("Resources", {})
        total += min(int(held.get(name, 0.0) / amount + 1e-9) for name, amount in needs.items())
    return total


def spare_node(ray: Any, needs: dict[str, float], avoid: set[str], placed: list[str]) -> str | None:
    """The live node outside ``avoid`` with room for one more player and the fewest of the
    players ``placed`` (their nodes); None when there is none, or nothing to avoid."""
    if not avoid:
        return None
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive") and n["NodeID"] not in avoid]
    except Exception:  # the cluster cannot say: let Ray place it
        return None
    roomy = [n["NodeID"] for n in nodes if capacity([n], needs) > 0]
    return min(roomy, key=placed.count, default=None)
