"""One indexing job per home at a time: `shoplens index`, `publish-copy` and `adapt` all write the same versions."""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from indexer.errors import ConfigError


@contextmanager
def run_lock(home: Path) -> Iterator[None]:
    """One indexer per home at a time; the lock dies with the process, so a SIGKILLed run never blocks the next."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "index.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another `shoplens index` is running on {home}",
                              hint="Wait for it to finish.") from None
        yield
