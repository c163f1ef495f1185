"""Download a model file on the user's request: resumable, checked against its SHA-256, never half in place.

The offer (URL and SHA-256) comes from the plugin's ``metadata.txt`` (``model_url``, ``model_sha256``): the
file the plugin zip cannot carry. Bytes go to ``<file>.part`` first; a dropped connection or a cancel keeps
that part, and the next attempt asks the server for the rest (HTTP ``Range``). Only a complete file whose
SHA-256 matches is renamed to its final name, so a half or foreign file never sits where a model is looked
for. A complete part with the wrong checksum is deleted (resuming it could never succeed).

Standard library only (urllib, no Qt): it runs inside a ``QgsTask`` and in tests against a local server.
Nothing here runs unless called: the plugin calls it from the model manager's Download button only.
"""
from __future__ import annotations

import configparser
import http.client
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.checksum import file_sha256

METADATA = Path(__file__).resolve().parent.parent / "metadata.txt"
CHUNK_BYTES = 256 * 1024
TIMEOUT_S = 30.0
PART_SUFFIX = ".part"
#: ``progress(done_bytes, total_bytes or None)``, called after each chunk.
Progress = Callable[[int, "int | None"], None]


class DownloadError(RuntimeError):
    """A download that did not give the file; the message says what failed and what to do, in plain words."""


class DownloadCancelled(DownloadError):
    """The user cancelled; the part downloaded so far is kept for the next attempt."""


@dataclass(frozen=True)
class DownloadOffer:
    """A model file the user may download: where from, its SHA-256, and the file name it gets."""

    url: str
    sha256: str

    @property
    def file_name(self) -> str:
        return Path(urllib.parse.urlparse(self.url).path).name


def read_offer(metadata: Path = METADATA) -> DownloadOffer | None:
    """The offer in ``metadata.txt`` (``model_url`` and ``model_sha256``), or None when it names none."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(metadata, encoding="utf-8")
    url = parser.get("general", "model_url", fallback="").strip()
    sha = parser.get("general", "model_sha256", fallback="").strip().lower()
    if not url or not re.fullmatch(r"[0-9a-f]{64}", sha):
        return None
    return DownloadOffer(url, sha)


def sha256_of(path: Path) -> str:
    return file_sha256(str(path))


def part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _open(url: str, offset: int) -> http.client.HTTPResponse:
    """The server's answer for the bytes from ``offset`` on; failures raise :class:`DownloadError`."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"The model address '{url}' is not a web address (http or https); "
                            "check model_url in the plugin's metadata.txt.")
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 -- scheme checked above
    except urllib.error.HTTPError as exc:
        if exc.code == 416:  # nothing left after offset: the part is already complete
            raise
        raise DownloadError(f"The server answered '{exc.code} {exc.reason}' for {url}. The file may have "
                            "moved: look for a newer plugin version, or install the model from a file.") from None
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"Could not reach {urllib.parse.urlparse(url).netloc}: {reason}. Check the internet "
                            "connection (or proxy) and press Download again.") from None


def _total(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """(where the response's bytes start, the whole file's size if known); a server that ignored the
    ``Range`` (200) starts again at 0."""
    if response.status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise DownloadError("The server sent a different part of the file than was asked for; "
                                "press Download again.")
        return offset, None if match.group(2) == "*" else int(match.group(2))
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None


def _fetch(url: str, part: Path, progress: Progress, cancelled: Callable[[], bool]) -> None:
    """Append the missing bytes to ``part`` until the server has sent the whole file."""
    offset = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(url, offset)
    except urllib.error.HTTPError:  # 416: complete already, the checksum decides
        return
    with response:
        start, total = _total(response, offset)
        done = start
        with open(part, "ab" if start else "wb") as out:
            while True:
                if cancelled():
                    raise DownloadCancelled(f"Download cancelled; the {_mb(done)} received are kept and "
                                            "Download resumes from there.")
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as exc:
                    raise _dropped(done, total, exc) from None
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                progress(done, total)
    if total is not None and done < total:
        raise _dropped(done, total, "the connection closed early")


def _dropped(done: int, total: int | None, why: object) -> DownloadError:
    of = f" of {_mb(total)}" if total else ""
    return DownloadError(f"The download stopped after {_mb(done)}{of} ({why}). What arrived is kept: press "
                         "Download again to resume.")


def download(offer: DownloadOffer, folder: Path, progress: Progress = lambda done, total: None,
             cancelled: Callable[[], bool] = lambda: False) -> Path:
    """Download ``offer`` into ``folder`` and return the checked file's path.

    Resumes from ``<name>.part`` when one is there; renames it to ``<name>`` only when its SHA-256 matches.
    An existing file of that name is never replaced: it is returned when it is the same file, else refused.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / offer.file_name
    if target.exists():
        if target.is_file() and sha256_of(target) == offer.sha256:
            return target
        raise DownloadError(f"{target} already exists and is not the expected file; it is left alone. "
                            "Remove or rename it, then press Download again.")
    part = part_path(target)
    _fetch(offer.url, part, progress, cancelled)
    got = sha256_of(part)
    if got != offer.sha256:
        part.unlink()
        raise DownloadError(f"The downloaded file is not the expected one (its SHA-256 is {got[:12]}…, the "
                            f"plugin expects {offer.sha256[:12]}…), so it was deleted. The server may hold "
                            "another version: update the plugin, or install the model from a file.")
    os.replace(part, target)
    return target
