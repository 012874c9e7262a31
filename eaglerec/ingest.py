"""Ingest: copy a MovieLens release into var/raw/<dataset>/ with checksums; idempotent.

A csv release (ml-latest, ml-25m, ml-20m) is copied unchanged; ml-10m, ml-1m and ml-100k are converted to the same
layout (eaglerec/releases.py), so the raw gate and dbt read every release alike."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from eaglerec.files import CHUNK_BYTES, compute_sha256, replace_dir
from eaglerec.releases import (
    LAYOUT_FILES,
    LICENCE_FILES,
    MARKERS,
    RELEASE_FILES,
    REQUIRED_FILES,
    ReleaseFormatError,
    check_required_files,
    detect_format,
    source_files,
    write_layout,
    write_missing_optional_files,
)
from eaglerec.settings import Paths

RAW_FILES = LAYOUT_FILES
MANIFEST_FILE = "_manifest.json"
DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class IngestError(Exception):
    """The source cannot be ingested; the message names the source and what is wrong."""


@dataclass(frozen=True)
class IngestResult:
    dataset: str
    raw_dir: Path
    changed: bool
    checksums: dict[str, str]


def read_manifest(raw_dir: Path) -> dict | None:
    """Return the manifest of an ingested dataset, or None when there is none."""
    manifest = raw_dir / MANIFEST_FILE
    return json.loads(manifest.read_text()) if manifest.exists() else None


def is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def name_dataset(source: str) -> str:
    """Return the dataset name a source implies: the folder name, or the zip file's stem."""
    path = urllib.parse.urlparse(source).path if is_url(source) else source
    name = Path(path.rstrip("/")).name
    return name[: -len(".zip")] if name.endswith(".zip") else name


def download(url: str, dest: Path, expected_sha256: str | None = None) -> str:
    """Download url to dest (via a .part file) with a progress bar; return its SHA-256, checked if expected."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with part.open("wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, desc=f"download {dest.name}"
            ) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise IngestError(f"{url}: download failed: {exc}") from exc
    sha256 = digest.hexdigest()
    if expected_sha256 and sha256 != expected_sha256.lower():
        part.unlink(missing_ok=True)
        raise IngestError(f"{url}: checksum mismatch: expected sha256 {expected_sha256}, got {sha256}")
    os.replace(part, dest)
    return sha256


def fetch_zip(url: str, paths: Paths, expected_sha256: str | None) -> Path:
    """Return a local copy of a zip URL, reusing an earlier download of the same URL and checksum."""
    dest = paths.downloads / Path(urllib.parse.urlparse(url).path).name
    sidecar = dest.with_name(dest.name + ".json")
    if dest.exists() and sidecar.exists():
        recorded = json.loads(sidecar.read_text())
        same_request = recorded.get("url") == url and expected_sha256 in (None, recorded.get("sha256"))
        if same_request and compute_sha256(dest) == recorded.get("sha256"):
            return dest
    sha256 = download(url, dest, expected_sha256)
    sidecar.write_text(json.dumps({"url": url, "sha256": sha256}, indent=2))
    return dest


def extract_release(archive: Path, into: Path) -> Path:
    """Extract the MovieLens files of a release zip (any format) into a folder and return it."""
    if not zipfile.is_zipfile(archive):
        raise IngestError(f"{archive}: not a zip file")
    with zipfile.ZipFile(archive) as release:
        members = {Path(info.filename): info for info in release.infolist() if not info.is_dir()}
        folders = sorted({path.parent for path in members if path.name in MARKERS})
        if len(folders) != 1:
            raise IngestError(f"{archive}: expected one folder with a ratings file ({', '.join(MARKERS)}), "
                              f"found {len(folders)}")
        into.mkdir(parents=True, exist_ok=True)
        for member_path, member in members.items():
            if member_path.parent == folders[0] and member_path.name in RELEASE_FILES:
                # Written under our own file name: member paths from the archive never reach the disk.
                with release.open(member) as src, (into / member_path.name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK_BYTES)
    return into


def check_release_dir(folder: Path) -> None:
    """Raise IngestError unless folder holds a MovieLens release in the csv layout (ratings.csv and movies.csv;
    links.csv and tags.csv optional)."""
    if not folder.is_dir():
        raise IngestError(f"{folder}: no such directory")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise IngestError(f"{folder}: missing {', '.join(missing)} "
                          f"(expected the ml-latest layout: {', '.join(RAW_FILES)}; the last two optional)")


def stage_release(folder: Path, staged: Path) -> dict:
    """Write the release's csv layout into staged (copied, or converted from its own format); return what the
    manifest records of it: format, and which release file each layout file came from."""
    try:
        release_format = detect_format(folder)
        check_required_files(folder, release_format)
        if release_format.sources is None:
            for name in RAW_FILES:
                # A zero-byte links.csv or tags.csv counts as absent (it gets a header below).
                if (folder / name).is_file() and (name in REQUIRED_FILES or (folder / name).stat().st_size):
                    shutil.copyfile(folder / name, staged / name)
            converted = {}
        else:
            converted = write_layout(folder, release_format, staged)
        for name in LICENCE_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, staged / name)
        absent = write_missing_optional_files(staged)
    except ReleaseFormatError as exc:
        raise IngestError(str(exc)) from exc
    return {"format": release_format.name, "converted_from": converted, "empty_files": absent}


def ingest(source: str, dataset: str | None = None, paths: Paths | None = None,
           expected_sha256: str | None = None) -> IngestResult:
    """Copy a release (folder, .zip file or http(s) .zip URL) into var/raw/<dataset>/ with a checksum manifest."""
    paths = paths or Paths.from_env()
    dataset = dataset or name_dataset(source)
    if not DATASET_NAME.match(dataset):
        raise IngestError(f"dataset name {dataset!r}: use letters, digits, '.', '_' or '-'")
    paths.raw.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.raw, prefix=f".staging-{dataset}-") as scratch:
        if is_url(source) or source.endswith(".zip"):
            archive = fetch_zip(source, paths, expected_sha256) if is_url(source) else Path(source)
            if not archive.is_file():
                raise IngestError(f"{source}: no such file")
            folder = extract_release(archive, Path(scratch) / "extracted")
        else:
            folder = Path(source)
        if not folder.is_dir():
            raise IngestError(f"{folder}: no such directory")
        try:
            files = source_files(folder, detect_format(folder))
        except ReleaseFormatError as exc:
            raise IngestError(str(exc)) from exc
        # The checksums of the release's own files: an unchanged release is not converted again.
        checksums = {name: compute_sha256(folder / name) for name in [*files, *LICENCE_FILES]
                     if (folder / name).is_file()}
        raw_dir = paths.raw_dataset(dataset)
        previous = read_manifest(raw_dir)
        if previous and previous.get("files") == checksums:
            return IngestResult(dataset, raw_dir, changed=False, checksums=checksums)
        staged = Path(scratch) / "dataset"
        staged.mkdir()
        layout = stage_release(folder, staged)
        manifest = {"dataset": dataset, "source": source, "ingested_at": int(time.time()), "files": checksums,
                    **layout}
        (staged / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        replace_dir(staged, raw_dir)
    return IngestResult(dataset, raw_dir, changed=True, checksums=checksums)
