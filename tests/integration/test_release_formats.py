"""Every GroupLens release format, ingested natively: ml-100k (u.data, u.item, u.genre), ml-1m and ml-10m ("::" .dat
files, latin-1 titles in ml-1m), and csv releases without tags or links. The fixtures are written here, by hand for
the exact expectations and from the bundled release for a full build."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from eaglerec.features import build_features
from eaglerec.ingest import MANIFEST_FILE, IngestError, ingest
from eaglerec.settings import BUNDLED_DATASET_DIR, Paths
from expectations.gate import validate_raw_dataset
from tests.conftest import TINY_MOVIES, TINY_RATINGS, write_tiny_release

pytestmark = pytest.mark.integration

U_GENRE = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]


def u_item_line(movie: int, title: str, genres: list[str]) -> str:
    flags = "|".join("1" if name in genres else "0" for name in U_GENRE)
    return f"{movie}|{title}|01-Jan-1995||http://us.imdb.com/M/title-exact?x|{flags}\n"


def write_100k(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("1\t1\t4\t874965758\n1\t2\t3\t876893171\n2\t3\t5\t878542960\n2\t1\t1\t876893119\n")
    items = (u_item_line(1, "Toy Story (1995)", ["Animation", "Children's", "Comedy"])
             + u_item_line(2, "American President, The (1995)", ["Comedy", "Drama", "Romance"])
             + u_item_line(3, "Amélie (2001)", ["unknown"]))
    (folder / "u.item").write_bytes(items.encode("latin-1"))
    (folder / "u.genre").write_text("".join(f"{name}|{index}\n" for index, name in enumerate(U_GENRE)) + "\n")
    (folder / "u1.base").write_text("not read\n")
    return folder


def test_ml_100k_is_converted_to_the_csv_layout_with_empty_tags_and_links(tmp_path):
    paths = Paths(tmp_path / "home")
    result = ingest(str(write_100k(tmp_path / "ml-100k")), paths=paths)

    raw = result.raw_dir
    assert (raw / "ratings.csv").read_text() == (
        "userId,movieId,rating,timestamp\n1,1,4,874965758\n1,2,3,876893171\n2,3,5,878542960\n2,1,1,876893119\n")
    assert (raw / "movies.csv").read_text(encoding="utf-8") == (
        "movieId,title,genres\n1,Toy Story (1995),Animation|Children|Comedy\n"
        '2,"American President, The (1995)",Comedy|Drama|Romance\n3,Amélie (2001),(no genres listed)\n')
    assert (raw / "links.csv").read_text() == "movieId,imdbId,tmdbId\n"
    assert (raw / "tags.csv").read_text() == "userId,movieId,tag,timestamp\n"
    manifest = json.loads((raw / MANIFEST_FILE).read_text())
    assert manifest["format"] == "100k"
    assert manifest["converted_from"] == {"ratings.csv": "u.data", "movies.csv": "u.item"}
    assert manifest["empty_files"] == ["links.csv", "tags.csv"]
    assert set(manifest["files"]) == {"u.data", "u.item", "u.genre"}
    assert validate_raw_dataset(raw).row_counts["ratings"] == 4
    assert not ingest(str(tmp_path / "ml-100k"), paths=paths).changed


def test_ml_1m_from_its_zip_with_latin1_titles(tmp_path):
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as release:
        release.writestr("ml-1m/ratings.dat", "1::1::5::978300760\n1::2::3::978302109\n2::2::4::978301968\n")
        release.writestr("ml-1m/movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                                             "2::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n"
                         .encode("latin-1"))
        release.writestr("ml-1m/users.dat", "1::F::1::10::48067\n")
        release.writestr("ml-1m/README", "the licence\n")
    result = ingest(str(archive), paths=Paths(tmp_path / "home"))

    assert result.dataset == "ml-1m"
    assert sorted(path.name for path in result.raw_dir.iterdir()) == [
        "README", MANIFEST_FILE, "links.csv", "movies.csv", "ratings.csv", "tags.csv"]
    assert (result.raw_dir / "movies.csv").read_text(encoding="utf-8") == (
        "movieId,title,genres\n1,Toy Story (1995),Animation|Children|Comedy\n"
        '2,"Cité des enfants perdus, La (1995)",Adventure|Sci-Fi\n')
    assert (result.raw_dir / "ratings.csv").read_text().splitlines()[1:] == [
        "1,1,5,978300760", "1,2,3,978302109", "2,2,4,978301968"]
    validate_raw_dataset(result.raw_dir)


def test_ml_10m_with_half_stars_and_tags_holding_the_separator(tmp_path):
    folder = tmp_path / "ml-10M100K"
    folder.mkdir()
    (folder / "ratings.dat").write_text("15::1::3.5::1215184630\n15::2::0.5::1215184631\n")
    (folder / "movies.dat").write_text("1::Toy Story (1995)::Adventure|Animation|Children|Comedy|Fantasy\n"
                                       "2::Jumanji (1995)::Adventure|Children|Fantasy\n")
    (folder / "tags.dat").write_text("15::1::excellent!::1215184632\n15::2::a::b tag::1215184633\n")
    result = ingest(str(folder), "ml-10m", paths=Paths(tmp_path / "home"))

    tags = pd.read_csv(result.raw_dir / "tags.csv")
    assert tags["tag"].tolist() == ["excellent!", "a::b tag"]
    assert pd.read_csv(result.raw_dir / "ratings.csv")["rating"].tolist() == [3.5, 0.5]
    assert json.loads((result.raw_dir / MANIFEST_FILE).read_text())["empty_files"] == ["links.csv"]
    validate_raw_dataset(result.raw_dir)


def test_a_line_with_missing_fields_stops_ingest_naming_file_and_line(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1::5::978300760\n1::2::978302109\n")
    (folder / "movies.dat").write_text("1::Toy Story (1995)::Animation\n")
    paths = Paths(tmp_path / "home")
    with pytest.raises(IngestError, match=r"ratings\.dat line 2: expected 4 fields separated by '::', found 3"):
        ingest(str(folder), paths=paths)
    assert not (paths.raw / "ml-1m").exists()


def test_an_unknown_layout_names_the_files_each_format_has(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "scores.csv").write_text("a,b\n")
    with pytest.raises(IngestError, match=r"no MovieLens ratings file \(expected one of: ratings\.csv .*"
                                          r"ratings\.dat \(ml-10m, ml-1m\); u\.data \(ml-100k\)\)"):
        ingest(str(folder), paths=Paths(tmp_path / "home"))


def test_a_csv_release_without_tags_and_links_passes(tmp_path):
    folder = write_tiny_release(tmp_path / "tiny")
    (folder / "links.csv").unlink()
    (folder / "tags.csv").write_text("")  # zero bytes: as absent
    result = ingest(str(folder), paths=Paths(tmp_path / "home"))
    assert (result.raw_dir / "ratings.csv").read_text() == TINY_RATINGS
    assert (result.raw_dir / "movies.csv").read_text() == TINY_MOVIES
    assert (result.raw_dir / "links.csv").read_text() == "movieId,imdbId,tmdbId\n"
    report = validate_raw_dataset(result.raw_dir)
    assert report.row_counts["tags"] == 0 and report.row_counts["links"] == 0


def write_100k_from_bundled(folder: Path, users: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The bundled release's first users in ml-100k's format; returns the ratings and movies written."""
    ratings = pd.read_csv(BUNDLED_DATASET_DIR / "ratings.csv")
    ratings = ratings[ratings["userId"] <= users]
    movies = pd.read_csv(BUNDLED_DATASET_DIR / "movies.csv")
    movies = movies[movies["movieId"].isin(ratings["movieId"])]
    genres = sorted({name for text in movies["genres"] for name in text.split("|") if name != "(no genres listed)"})
    folder.mkdir(parents=True)
    # ml-100k's ratings are whole stars: the half stars are rounded up here, as a 100k release would hold them.
    ratings = ratings.assign(rating=ratings["rating"].apply(lambda value: int(-(-value // 1))))
    ratings.to_csv(folder / "u.data", sep="\t", header=False, index=False)
    with (folder / "u.item").open("w", encoding="utf-8") as items:
        for movie in movies.itertuples():
            flags = "|".join("1" if name in movie.genres.split("|") else "0" for name in ["unknown", *genres])
            items.write(f"{movie.movieId}|{movie.title}|||url|{flags}\n")
    (folder / "u.genre").write_text("".join(f"{name}|{index}\n" for index, name in enumerate(["unknown", *genres])))
    return ratings, movies


@pytest.mark.slow
def test_a_100k_format_release_builds_the_marts_with_null_links(tmp_path):
    paths = Paths(tmp_path / "home")
    ratings, movies = write_100k_from_bundled(tmp_path / "ml-100k", users=40)
    result = ingest(str(tmp_path / "ml-100k"), paths=paths)
    validate_raw_dataset(result.raw_dir)
    build_features(result.dataset, paths=paths)

    events = pd.read_parquet(paths.marts / "rating_events.parquet")
    assert len(events) == len(ratings) and events["user_id"].nunique() == ratings["userId"].nunique()
    catalog = pd.read_parquet(paths.marts / "movie_catalog.parquet").set_index("movie_id")
    assert sorted(catalog.index) == sorted(movies["movieId"])
    assert catalog["imdb_id"].isna().all() and catalog["tmdb_id"].isna().all()
    assert catalog.loc[1, "title"] == movies.set_index("movieId").loc[1, "title"]
