"""Downloading a model on request (qgis_io/model_download.py) from a real HTTP server on 127.0.0.1: resume after
a dropped connection (HTTP Range), a server that ignores Range, a wrong checksum, errors in plain words, and
the offer in metadata.txt matching the file it names."""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from local_http import Behaviour, LocalServer
from planet_terrain_plugin.core import models
from planet_terrain_plugin.qgis_io.model_download import (METADATA, DownloadCancelled, DownloadError,
                                                          DownloadOffer, download, part_path, read_offer,
                                                          sha256_of)

BODY = os.urandom(700_000)  # several chunks: a drop lands mid-file
SHA = hashlib.sha256(BODY).hexdigest()


def _offer(url: str, sha: str = SHA) -> DownloadOffer:
    return DownloadOffer(url, sha)


def test_a_whole_download_is_checked_and_put_in_place(tmp_path):
    seen = []
    with LocalServer(Behaviour(BODY)) as url:
        path = download(_offer(url), tmp_path, lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "model.onnx" and path.read_bytes() == BODY
    assert not part_path(path).exists()
    assert seen[-1] == (len(BODY), len(BODY)) and len(seen) > 1


def test_a_dropped_connection_keeps_the_part_and_the_next_try_resumes_with_range(tmp_path):
    behaviour = Behaviour(BODY, drops=1, drop_after=300_000)
    with LocalServer(behaviour) as url:
        with pytest.raises(DownloadError, match=r"stopped after 0\.3 MB of 0\.7 MB .*press Download again to resume"):
            download(_offer(url), tmp_path)
        part = part_path(tmp_path / "model.onnx")
        assert part.stat().st_size == 300_000 and not (tmp_path / "model.onnx").exists(), "never a half file"
        path = download(_offer(url), tmp_path)
    assert behaviour.requests == [None, "bytes=300000-"]
    assert path.read_bytes() == BODY and not part.exists()


def test_a_server_that_ignores_range_starts_again_from_zero(tmp_path):
    part_path(tmp_path / "model.onnx").write_bytes(BODY[:1000])
    with LocalServer(Behaviour(BODY, honour_range=False)) as url:
        path = download(_offer(url), tmp_path)
    assert path.read_bytes() == BODY


def test_a_complete_part_is_checked_without_fetching_it_again(tmp_path):
    part_path(tmp_path / "model.onnx").write_bytes(BODY)
    behaviour = Behaviour(BODY)
    with LocalServer(behaviour) as url:
        path = download(_offer(url), tmp_path)
    assert behaviour.requests == [f"bytes={len(BODY)}-"] and path.read_bytes() == BODY


def test_a_wrong_checksum_deletes_the_file_and_puts_nothing_in_place(tmp_path):
    with LocalServer(Behaviour(BODY)) as url:
        with pytest.raises(DownloadError, match=r"not the expected one \(its SHA-256 is .*so it was deleted"):
            download(_offer(url, "0" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cancel_keeps_the_part(tmp_path):
    calls = []
    with LocalServer(Behaviour(BODY)) as url:
        with pytest.raises(DownloadCancelled, match="cancelled; the .* MB received are kept"):
            download(_offer(url), tmp_path, lambda d, t: calls.append(d), lambda: len(calls) >= 1)
    assert part_path(tmp_path / "model.onnx").stat().st_size == calls[0]


def test_errors_say_what_failed_in_plain_words(tmp_path):
    with LocalServer(Behaviour(BODY)) as url:
        with pytest.raises(DownloadError, match="answered '404 Not Found'"):
            download(_offer(url.replace("model.onnx", "gone.onnx")), tmp_path)
    with pytest.raises(DownloadError, match=r"Could not reach 127\.0\.0\.1:9: .*Check the internet connection"):
        download(_offer("http://127.0.0.1:9/model.onnx"), tmp_path)
    with pytest.raises(DownloadError, match="not a web address"):
        download(_offer("file:///etc/passwd"), tmp_path)
    assert not (tmp_path / "model.onnx").exists()


def test_an_existing_different_file_is_never_replaced(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"the user's own file")
    with LocalServer(Behaviour(BODY)) as url:
        with pytest.raises(DownloadError, match="already exists and is not the expected file; it is left alone"):
            download(_offer(url), tmp_path)
    assert (tmp_path / "model.onnx").read_bytes() == b"the user's own file"


def test_metadata_offers_the_shipped_fp16_file_by_its_checksum():
    offer = read_offer()
    assert offer is not None and offer.url.startswith("https://") and offer.file_name.endswith(".fp16.onnx")
    fp16 = models.variant_path("fp16")
    if not fp16.is_file():
        pytest.skip("the fp16 file is not in this checkout (the zip leaves it out)")
    assert offer.file_name == fp16.name and offer.sha256 == sha256_of(fp16), \
        f"metadata.txt's model_sha256 must be {sha256_of(fp16)} (the shipped {fp16.name})"


def test_metadata_without_an_offer_offers_nothing(tmp_path):
    meta = tmp_path / "metadata.txt"
    meta.write_text("[general]\nname=x\nmodel_url=https://example.org/m.onnx\nmodel_sha256=nothex\n")
    assert read_offer(meta) is None
    assert read_offer(Path(METADATA)) is not None


def test_the_zip_offers_for_download_the_model_it_leaves_out_and_stays_reproducible(tmp_path):
    from scripts.package import build_zip, validate_zip

    first, left_out = build_zip(tmp_path / "a")
    second, _ = build_zip(tmp_path / "b")
    assert validate_zip(first) == [] and sha256_of(first) == sha256_of(second), "make package is reproducible"
    with zipfile.ZipFile(first) as zf:
        (tmp_path / "metadata.txt").write_bytes(zf.read("planet_terrain_plugin/metadata.txt"))
        names = zf.namelist()
    offer = read_offer(tmp_path / "metadata.txt")
    assert offer is not None and f"planet_terrain_plugin/models/{offer.file_name}" not in names
    if models.variant_path("fp16").is_file():
        assert left_out == [offer.file_name], "the download offers exactly the file the zip cannot carry"
