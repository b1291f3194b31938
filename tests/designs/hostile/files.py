"""Reads and writes outside its scratch folder (the test fills in the paths)."""

from typing import Any

from alma.memory import MemoryDesign

READ = ["RUN_DATABASE", "HOME_FILE"]
WRITE = ["HOME_FILE_NEW", "PROJECT_FILE_NEW", "/etc/passwd"]


class Files(MemoryDesign):
    async def retrieve(self, start: Any) -> dict[str, Any]:
        seen = {}
        for path in READ:
            try:
                with open(path, "rb") as handle:
                    seen[path] = len(handle.read())
            except OSError as error:
                seen[path] = str(error)
        return {"seen": seen}

    async def update(self, episode: Any) -> None:
        for path in WRITE:
            try:
                with open(path, "a") as handle:
                    handle.write("pwned\n")
            except OSError:
                pass
