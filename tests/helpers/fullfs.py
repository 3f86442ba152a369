"""A real small filesystem (tmpfs) a test fills to make writes fail with ENOSPC (Errno 28)."""

import os
import subprocess
from pathlib import Path

PAGE = 4096  # tmpfs counts whole pages per file


class SmallFs:
    """A tmpfs of `size` bytes mounted at `path`; `leave(n)` fills it to leave n bytes free."""

    def __init__(self, path: Path, size: int):
        self.path, self.size = path, size
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
        self.filler = path / ".filler"

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def used(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def leave(self, free: int) -> None:
        """Grows or shrinks the filler file so that `free` bytes (whole pages) stay free."""
        current = self.filler.stat().st_size if self.filler.exists() else 0
        target = max(0, current + self.free() - free)
        self.filler.unlink(missing_ok=True)
        with open(self.filler, "wb") as fh:
            fh.write(b"\0" * target)  # real pages: a sparse file would take no room

    def unfill(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root in a container that allows it)."""
    return os.geteuid() == 0
