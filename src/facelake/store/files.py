"""Replacing a file so that what it held is gone from the disk, not only from its directory.

Why not a plain ``os.replace``: a rename unlinks the old inode, and the file system frees
its blocks with the erased faces still in them, readable by anyone who carves the disk.
Here the old inode is kept through a second name (a hard link) until the new file is in
place, then overwritten with zeros and removed. Crash safety is the rename's: at every
moment ``path`` is either the old complete file or the new complete one; a leftover old
name (``<path>.erased``) is wiped by :func:`recover` on the next open.

What this cannot promise (docs/privacy.md): on copy-on-write file systems (btrfs, ZFS),
snapshots, and SSDs that remap blocks, overwriting a file writes new blocks and the old ones
live on until the device reuses them; backups hold what they held.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHUNK = 1 << 20


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def wipe(path: Path) -> None:
    """Overwrite ``path`` with zeros, in place, flush it to the disk, and remove it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    zeros = bytes(_CHUNK)
    with open(path, "r+b", buffering=0) as f:
        left = size
        while left > 0:
            left -= f.write(zeros[: min(left, _CHUNK)])
        os.fsync(f.fileno())
    path.unlink()


def old_name(path: Path) -> Path:
    """The second name the replaced file keeps until it is wiped."""
    return path.with_name(path.name + ".erased")


def replace_wiping(fresh: Path, path: Path) -> None:
    """Put ``fresh`` in place of ``path`` atomically, then wipe the bytes of the file it replaced."""
    _fsync(fresh)
    old = old_name(path)
    wipe(old)
    if path.exists():
        os.link(path, old)
    os.replace(fresh, path)
    _fsync(path.parent)
    wipe(old)


def recover(path: Path) -> None:
    """Finish a :func:`replace_wiping` that a crash interrupted (``path`` itself is always whole)."""
    wipe(old_name(path))
