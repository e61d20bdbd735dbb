"""Atomic file writes: a reader (``analyze``, a resuming run, ``tail -f``) never sees half a file.

Every write goes to a temporary file beside the target (``.<name>.<random>.tmp``, same folder, so
the rename cannot cross file systems) and is renamed onto the target with ``os.replace``; the
temporary file is removed if anything fails, leaving the previous file intact. Files are made
``0644`` (``mkstemp`` creates ``0600``; run folders are meant to be read by others).

``fsync=True`` also flushes the data to disk before the rename, so a machine that loses power
right after the rename still has the new file's contents, not an empty one; checkpoints use it.
Small files that are rewritten often (``run.json``, ``last.json``, ``per_sample/*.npz``) do not.

Standard library only: the analysis (no torch) and the callbacks share it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "wb", *, fsync: bool = False, encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """A file object for writers that take one (``torch.save``, ``csv.writer``); what was written
    becomes ``path`` when the ``with`` block ends without an exception.

    Args:
        path: the target; its folder is created if needed.
        mode: ``"wb"`` or ``"w"`` (text; ``encoding`` / ``newline`` as for :func:`open`).
        fsync: flush the data to disk before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", fsync: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (see the module docstring)."""
    atomic_write_bytes(path, text.encode(encoding), fsync=fsync)


__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text"]
