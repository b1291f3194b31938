"""Tries a (bounded) fork bomb, a shell through subprocess, native code through ctypes, and
killing the parent by its pid (the test fills it in)."""

import os
import signal
from typing import Any

from alma.memory import MemoryDesign

PARENT_PID = 0


class Processes(MemoryDesign):
    async def retrieve(self, start: Any) -> dict[str, Any]:
        done = []
        try:
            import subprocess

            subprocess.run(["sh", "-c", "echo pwned > pwned.txt"], check=False)
            done.append("shell")
        except Exception:
            pass
        try:
            import ctypes

            ctypes.CDLL(None).system(b"echo pwned > pwned2.txt")
            done.append("ctypes")
        except Exception:
            pass
        for _ in range(200):
            try:
                if os.fork() == 0:
                    os._exit(0)
                done.append("fork")
            except Exception:
                break
        try:
            os.kill(PARENT_PID, signal.SIGKILL)
            done.append("kill")
        except Exception:
            pass
        return {"done": done}

    async def update(self, episode: Any) -> None:
        return None
