import http.server
import json
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from eaglerec.files import compute_sha256
from eaglerec.ingest import MANIFEST_FILE, IngestError, ingest, name_dataset
from eaglerec.settings import BUNDLED_DATASET_DIR

pytestmark = pytest.mark.unit


def test_ingest_copies_every_file_unchanged_with_checksums(tiny_release, paths):
    result = ingest(str(tiny_release), "tiny", paths=paths)

    assert result.changed
    assert result.raw_dir == paths.raw / "tiny"
    for name in ("ratings.csv", "movies.csv", "links.csv", "tags.csv"):
        assert (result.raw_dir / name).read_bytes() == (tiny_release / name).read_bytes()
    manifest = json.loads((result.raw_dir / MANIFEST_FILE).read_text())
    assert manifest["files"]["ratings.csv"] == compute_sha256(tiny_release / "ratings.csv")
    assert manifest["source"] == str(tiny_release)


def test_ingest_again_is_a_no_op_and_a_changed_source_replaces_the_copy(tiny_release, paths):
    first = ingest(str(tiny_release), "tiny", paths=paths)
    ratings_copy = first.raw_dir / "ratings.csv"
    stamp = ratings_copy.stat().st_mtime_ns
    marker = first.raw_dir / "_gate.json"
    marker.write_text("{}")

    again = ingest(str(tiny_release), "tiny", paths=paths)
    assert not again.changed
    assert ratings_copy.stat().st_mtime_ns == stamp
    assert marker.exists(), "an unchanged re-ingest keeps the gate result"

    (tiny_release / "ratings.csv").write_text((tiny_release / "ratings.csv").read_text() + "3,1,4.5,1537799260\n")
    changed = ingest(str(tiny_release), "tiny", paths=paths)
    assert changed.changed
    assert ratings_copy.read_text().endswith("3,1,4.5,1537799260\n")
    assert not marker.exists(), "new files must pass the gate again"
    assert not list(paths.raw.glob(".*")), "no staging or retired folders are left behind"


def test_ingest_names_the_missing_file(tiny_release, paths):
    (tiny_release / "movies.csv").unlink()
    with pytest.raises(IngestError, match=r"tiny: missing movies\.csv \(a csv release such as ml-latest"):
        ingest(str(tiny_release), paths=paths)
    assert not (paths.raw / "tiny").exists()


def test_dataset_names_come_from_folders_zips_and_urls():
    assert name_dataset("/data/ml-25m/") == "ml-25m"
    assert name_dataset("/tmp/ml-20m.zip") == "ml-20m"
    assert name_dataset("https://example.org/datasets/ml-latest-small.zip") == "ml-latest-small"


@pytest.fixture
def release_zip(tmp_path: Path) -> Path:
    archive = tmp_path / "served" / "ml-latest-small.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as release:
        for path in sorted(BUNDLED_DATASET_DIR.iterdir()):
            release.write(path, f"ml-latest-small/{path.name}")
    return archive


@pytest.fixture
def http_root(release_zip: Path):
    """A real HTTP server on loopback serving the folder that holds the zip."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(release_zip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_ingest_downloads_a_zip_url_and_checks_its_checksum(release_zip, http_root, paths):
    url = f"{http_root}/{release_zip.name}"
    result = ingest(url, paths=paths, expected_sha256=compute_sha256(release_zip))

    assert result.dataset == "ml-latest-small"
    for name in ("ratings.csv", "movies.csv", "links.csv", "tags.csv", "README.txt"):
        assert compute_sha256(result.raw_dir / name) == compute_sha256(BUNDLED_DATASET_DIR / name)
    assert (paths.downloads / release_zip.name).exists()
    assert not ingest(url, paths=paths).changed


def test_a_checksum_mismatch_stops_the_download_and_writes_nothing(release_zip, http_root, paths):
    with pytest.raises(IngestError, match="checksum mismatch"):
        ingest(f"{http_root}/{release_zip.name}", paths=paths, expected_sha256="0" * 64)
    assert not (paths.raw / "ml-latest-small").exists()
    assert not list(paths.downloads.glob("*.zip*"))


def test_a_missing_url_names_the_url(http_root, paths):
    with pytest.raises(IngestError, match=r"nothing\.zip: download failed"):
        ingest(f"{http_root}/nothing.zip", paths=paths)
