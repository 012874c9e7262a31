"""GroupLens's MovieLens release formats, detected and normalised to the one layout the pipeline reads.

Every release since 1998 is one of three formats:

- **csv** (ml-latest, ml-latest-small, ml-25m, ml-20m): ratings.csv, movies.csv, links.csv, tags.csv with headers,
  UTF-8. This is the layout the raw gate and dbt read; a csv release is taken as it is.
- **dat** (ml-1m, ml-10m): ratings.dat, movies.dat and (ml-10m) tags.dat, fields separated by "::", no header; ml-1m's
  titles are latin-1.
- **100k** (ml-100k): u.data (tab-separated ratings), u.item (pipe-separated, latin-1, nineteen 0/1 genre flags in the
  order of u.genre), u.genre.

The others are converted field by field into the csv layout, in their order: no value is parsed or dropped here
(blank lines are skipped, as the csv readers skip them), so the raw gate judges exactly what the release holds.
tags and links are optional in every format: a release without them gets header-only files (no feature reads them;
the movie catalogue's link columns are then null).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REQUIRED_FILES = ("ratings.csv", "movies.csv")
OPTIONAL_FILES = ("links.csv", "tags.csv")
LAYOUT_FILES = (*REQUIRED_FILES, *OPTIONAL_FILES)
HEADERS = {
    "ratings.csv": ("userId", "movieId", "rating", "timestamp"),
    "movies.csv": ("movieId", "title", "genres"),
    "links.csv": ("movieId", "imdbId", "tmdbId"),
    "tags.csv": ("userId", "movieId", "tag", "timestamp"),
}
NO_GENRES = "(no genres listed)"
# Older releases spell two genres differently from the csv releases (and from dbt's genre vocabulary).
GENRE_SPELLINGS = {"Children's": "Children", "unknown": NO_GENRES}


class ReleaseFormatError(Exception):
    """A release's files are not in a format this module knows, or a line has the wrong number of fields."""


@dataclass(frozen=True)
class ReleaseFormat:
    name: str
    examples: str
    # The file whose presence identifies the format (the ratings).
    marker: str
    # The release's own files each layout file is converted from (None: taken unchanged, csv format).
    sources: dict[str, str] | None


FORMATS = (
    ReleaseFormat("csv", "ml-latest, ml-latest-small, ml-25m, ml-20m", "ratings.csv", None),
    ReleaseFormat("dat", "ml-10m, ml-1m", "ratings.dat",
                  {"ratings.csv": "ratings.dat", "movies.csv": "movies.dat", "tags.csv": "tags.dat"}),
    ReleaseFormat("100k", "ml-100k", "u.data", {"ratings.csv": "u.data", "movies.csv": "u.item"}),
)
MARKERS = tuple(release_format.marker for release_format in FORMATS)
# The licence and description each release ships (kept with the data: the licence asks for it).
LICENCE_FILES = ("README.txt", "README", "README.html")
# Every file of a release the pipeline keeps; the rest (ml-100k's u1.base ... ua.test splits, ml-1m's users.dat,
# ml-25m's genome scores) is not extracted.
RELEASE_FILES = frozenset({*LAYOUT_FILES, *LICENCE_FILES, "u.genre",
                           *(name for f in FORMATS if f.sources for name in f.sources.values())})


def detect_format(folder: Path) -> ReleaseFormat:
    """Return the format of the release in folder, from the ratings file it has."""
    found = [release_format for release_format in FORMATS if (folder / release_format.marker).is_file()]
    if not found:
        known = "; ".join(f"{f.marker} ({f.examples})" for f in FORMATS)
        raise ReleaseFormatError(f"{folder}: no MovieLens ratings file (expected one of: {known})")
    return found[0]


def source_files(folder: Path, release_format: ReleaseFormat) -> list[str]:
    """The files of the release the layout is made from (those present; the checksums of the ingest manifest)."""
    names = LAYOUT_FILES if release_format.sources is None else tuple(release_format.sources.values())
    if release_format.name == "100k":
        names = (*names, "u.genre")
    return [name for name in names if (folder / name).is_file()]


def check_required_files(folder: Path, release_format: ReleaseFormat) -> None:
    required = REQUIRED_FILES if release_format.sources is None else [
        release_format.sources[name] for name in REQUIRED_FILES]
    if release_format.name == "100k":
        required = [*required, "u.genre"]
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        raise ReleaseFormatError(f"{folder}: missing {', '.join(missing)} (a {release_format.name} release "
                                 f"such as {release_format.examples} has {', '.join(required)})")


def read_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a release file: UTF-8, or latin-1 (ml-1m and ml-100k titles) when it is not UTF-8."""
    try:
        with path.open(encoding="utf-8", newline="") as source:
            for _ in source:
                pass
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "latin-1"
    with path.open(encoding=encoding, newline="") as source:
        for number, line in enumerate(source, start=1):
            line = line.rstrip("\r\n")
            if line:
                yield number, line


def split_fields(path: Path, number: int, line: str, separator: str, count: int, free: int | None = None
                 ) -> list[str]:
    """The fields of one line. free: the index of a text field that may itself hold the separator (a title, a tag);
    it takes what lies between the fields before and after it."""
    parts = line.split(separator)
    if free is not None and len(parts) > count:
        after = count - free - 1
        parts = [*parts[:free], separator.join(parts[free:len(parts) - after]), *parts[len(parts) - after:]]
    if len(parts) != count:
        raise ReleaseFormatError(f"{path.name} line {number}: expected {count} fields separated by {separator!r}, "
                                 f"found {len(parts)}: {line[:200]!r}")
    return parts


def normalise_genres(names: list[str]) -> str:
    genres = [GENRE_SPELLINGS.get(name, name) for name in names if name]
    real = [name for name in genres if name != NO_GENRES]
    return "|".join(real) if real else NO_GENRES


def convert_dat(folder: Path, layout_name: str, source_name: str) -> Iterator[list[str]]:
    path = folder / source_name
    for number, line in read_text_lines(path):
        if layout_name == "movies.csv":
            movie, title, genres = split_fields(path, number, line, "::", 3, free=1)
            yield [movie, title, normalise_genres(genres.split("|"))]
        elif layout_name == "tags.csv":
            yield split_fields(path, number, line, "::", 4, free=2)
        else:
            yield split_fields(path, number, line, "::", 4)


def read_genre_names(folder: Path) -> list[str]:
    """u.genre's names in flag order ("name|index" lines)."""
    path = folder / "u.genre"
    names = {}
    for number, line in read_text_lines(path):
        name, index = split_fields(path, number, line, "|", 2)
        if not index.isdigit():
            raise ReleaseFormatError(f"u.genre line {number}: expected 'name|index', found {line!r}")
        names[int(index)] = name
    if sorted(names) != list(range(len(names))):
        raise ReleaseFormatError(f"u.genre: genre indexes must run 0..{len(names) - 1}, found {sorted(names)}")
    return [names[index] for index in range(len(names))]


def convert_100k(folder: Path, layout_name: str, source_name: str) -> Iterator[list[str]]:
    path = folder / source_name
    if layout_name == "ratings.csv":
        for number, line in read_text_lines(path):
            yield split_fields(path, number, line, "\t", 4)
        return
    genres = read_genre_names(folder)
    # movie id | title | release date | video release date | IMDb URL | one 0/1 flag per genre
    for number, line in read_text_lines(path):
        fields = split_fields(path, number, line, "|", 5 + len(genres), free=1)
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise ReleaseFormatError(f"u.item line {number}: genre flags must be 0 or 1, found {'|'.join(flags)}")
        yield [fields[0], fields[1], normalise_genres([name for name, flag in zip(genres, flags) if flag == "1"])]


CONVERTERS: dict[str, Callable[[Path, str, str], Iterator[list[str]]]] = {"dat": convert_dat, "100k": convert_100k}


def write_layout(folder: Path, release_format: ReleaseFormat, dest: Path) -> dict[str, str]:
    """Write the csv layout of a dat or 100k release into dest; return {layout file: the release file it came from}.
    Optional files the release lacks are left to write_missing_optional_files."""
    assert release_format.sources is not None, "a csv release is copied, not converted"
    converter = CONVERTERS[release_format.name]
    converted = {}
    for layout_name, source_name in release_format.sources.items():
        if not (folder / source_name).is_file():
            continue
        with (dest / layout_name).open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(HEADERS[layout_name])
            writer.writerows(converter(folder, layout_name, source_name))
        converted[layout_name] = source_name
    return converted


def write_missing_optional_files(dest: Path) -> list[str]:
    """Give a csv release without links.csv or tags.csv header-only ones; return the names written."""
    written = []
    for name in OPTIONAL_FILES:
        if not (dest / name).exists():
            with (dest / name).open("w", encoding="utf-8", newline="") as out:
                csv.writer(out, lineterminator="\n").writerow(HEADERS[name])
            written.append(name)
    return written
