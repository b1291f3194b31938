"""Prints garbage to stdout and to every other descriptor, to break the protocol."""

import os
from typing import Any

from alma.memory import MemoryDesign


class Protocol(MemoryDesign):
    async def retrieve(self, start: Any) -> dict[str, Any]:
        print("garbage garbage garbage")
        for fd in range(1, 12):
            try:
                os.write(fd, b"}{ not json\n")
            except OSError:
                pass
        return {"tip": "nothing"}

    async def update(self, episode: Any) -> None:
        print('{"id": 1, "ok": true, "value": {"fake": 1}}')
