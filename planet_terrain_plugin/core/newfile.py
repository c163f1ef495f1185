"""Write a new file that is complete or absent and never replaces one: the writer's rule for files the core writes
(heads, training crops, label lists).

The bytes go to a hidden temporary in the target folder, then the temporary is *linked* to the final name, which
fails when the name exists, so a second writer (or a user's file) is never replaced; any failure removes the
temporary and nothing else.
"""
from __future__ import annotations

import errno
import os
import tempfile


class NewFileError(OSError):
    """The file cannot be written without replacing one, or the folder cannot be written."""


def write_new(path: str, data: bytes) -> str:
    """Write ``data`` to ``path``, which must not exist; returns the absolute path."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise NewFileError(f"the folder '{folder}' does not exist; create it or choose another folder")
    if os.path.exists(path):
        raise NewFileError(f"'{path}' already exists, and Planet Terrain never replaces a file; choose another "
                           "name, or delete the file first")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise NewFileError(f"cannot write to the folder '{folder}' ({exc.strerror or exc}); it is read-only or you "
                           "lack permission: choose another folder") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp's 0600 would hide a shared head from colleagues
        _link(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return path


def _link(temp: str, path: str) -> None:
    try:
        link_new(temp, path)
    except FileExistsError:
        raise NewFileError(f"'{path}' appeared while it was being written; it was left as it is. Choose another "
                           "name.") from None


def link_new(src: str, dst: str) -> None:
    """Make ``dst`` name the file ``src`` names; FileExistsError when ``dst`` exists (checked atomically)."""
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
    os.close(os.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # no hard links here: reserve, then move
    os.replace(src, dst)
