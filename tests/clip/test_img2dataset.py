"""score-images over real img2dataset output: every URL accounted for, tar identity, provenance, every table there.

The shards come from img2dataset itself (PyPI), downloading images served on 127.0.0.1 (:mod:`img2dataset_shards`):
``a/images`` re-encoded to 64 px (a 404, a cut JPEG and junk bytes fail in img2dataset), ``b/images`` stored as
downloaded (the 404 fails in img2dataset, the cut JPEG and the junk reach the tar and fail in score-images).
Both folders are called ``images`` and both hold ``00000.tar``: the default collection and the shard names collide.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import deltalake
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clip_builders import TINY, linear_head
from embedding_reader import EmbeddingReader
from img2dataset_shards import (
    FAIL_WHEN_REENCODED,
    FAIL_WITHOUT_REENCODING,
    FAILED_IN_TAR,
    img2dataset_command,
    run_img2dataset,
    serve,
    shard_rows,
    stats,
    write_site,
)
from pyspark.sql.pandas.types import from_arrow_schema
from typer.testing import CliRunner

from laion_spark.cli import app
from laion_spark.clip import score_images
from laion_spark.clip.job import ShardsError
from laion_spark.clip.params import IMAGE_ERRORS_TABLE, IMAGE_TAGS_TABLE, IMAGE_TARS_TABLE, ScoreImages
from laion_spark.engine.session import LakeSession
from laion_spark.lake.tables import write_table

#: img2dataset itself runs, twice, in fresh processes: 25 s (8.7 s of each is its import: torch through webdataset,
#: wandb, albumentations). The fast tier keeps score-images over tars this suite writes (test_score_images.py) and
#: img2dataset's listings (test_listing.py).
pytestmark = pytest.mark.slow

TABLES = (IMAGE_TAGS_TABLE, IMAGE_ERRORS_TABLE, IMAGE_TARS_TABLE)


class Img2Dataset:
    """The two img2dataset outputs and what img2dataset recorded for them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        with serve(root / "site") as base:
            self.site = write_site(root / "site", base)
            self.a, self.b = root / "a" / "images", root / "b" / "images"
            run_img2dataset(
                [
                    img2dataset_command(self.site.url_list, self.a, 8, reencode=True),
                    img2dataset_command(self.site.url_list, self.b, 16, reencode=False),
                ]
            )
        self.rows = {"a": shard_rows(self.a), "b": shard_rows(self.b)}

    def by_url(self, which: str) -> dict[str, dict]:
        """img2dataset's parquet row of every URL of output ``which``."""
        return {row["url"]: row for rows in self.rows[which].values() for row in rows}


def what(url: str) -> str:
    """What the site serves at ``url`` (``ok``, ``missing`` ...: the file name says it)."""
    return url.rsplit("/", 1)[1].split("_", 1)[1].split(".")[0]


@pytest.fixture(scope="module")
def i2d(tmp_path_factory: pytest.TempPathFactory) -> Img2Dataset:
    return Img2Dataset(tmp_path_factory.mktemp("img2dataset"))


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return linear_head(tmp_path_factory.mktemp("head") / "tiny-head.pth")


def run(sail: LakeSession, shards: Path | str, head: Path, lake: Path, **options):
    return score_images(
        sail, ScoreImages(shards=str(shards), model=TINY, head=head, lake=lake, batch_size=8, **options)
    )


@pytest.fixture(scope="module")
def scored_a(sail: LakeSession, i2d: Img2Dataset, head: Path, tmp_path_factory: pytest.TempPathFactory):
    """``a/images`` scored into a lake, with its embeddings written."""
    out = tmp_path_factory.mktemp("scored_a")
    summary = run(sail, i2d.a / "*.tar", head, out / "lake", write_embeddings=out / "emb")
    return out, summary


def read(path: Path) -> pd.DataFrame:
    return deltalake.DeltaTable(str(path)).to_pandas()


def test_img2dataset_wrote_what_the_tests_rely_on(i2d: Img2Dataset) -> None:
    assert sorted(i2d.rows["a"]) == ["00000.tar", "00001.tar"] and sorted(i2d.rows["b"]) == ["00000.tar"]
    for which, failing in (("a", FAIL_WHEN_REENCODED), ("b", FAIL_WITHOUT_REENCODING)):
        statuses = {what(u): r["status"] for u, r in i2d.by_url(which).items() if r["status"] != "success"}
        assert statuses == failing, which
    counts = {name: s["count"] for name, s in stats(i2d.a).items()}
    assert counts == {name: len(rows) for name, rows in i2d.rows["a"].items()} == {"00000.tar": 8, "00001.tar": 4}


# --- the cases of issue 20's 'Why', each failing before the change ---------------------------------------------


def test_a_second_img2dataset_output_in_a_folder_of_the_same_name_is_scored_not_skipped(
    sail: LakeSession, i2d: Img2Dataset, head: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    first = run(sail, i2d.a / "*.tar", head, lake)
    second = run(sail, i2d.b / "*.tar", head, lake)
    assert first.collection == second.collection == "images"
    assert (second.metrics["tars_skipped"], second.metrics["tars_scored"], second.metrics["rows_in"]) == (0, 1, 12)
    ledger = read(lake / IMAGE_TARS_TABLE)
    tars = sorted(str(p.resolve()) for p in [*i2d.a.glob("*.tar"), *i2d.b.glob("*.tar")])
    assert sorted(ledger["tar"]) == tars and ledger["shard"].nunique() == 3
    tags = read(lake / IMAGE_TAGS_TABLE)
    assert len(tags) == first.metrics["rows_embedded"] + second.metrics["rows_embedded"] == 9 + 9


def test_two_runs_writing_embeddings_into_one_folder_keep_every_row(
    sail: LakeSession, i2d: Img2Dataset, head: Path, tmp_path: Path
) -> None:
    emb = tmp_path / "emb"
    first = run(sail, i2d.a / "*.tar", head, tmp_path / "lake", write_embeddings=emb)
    written = {p: p.read_bytes() for p in emb.rglob("*") if p.is_file()}
    second = run(sail, i2d.b / "*.tar", head, tmp_path / "lake", write_embeddings=emb, collection="second")
    assert all(p.read_bytes() == data for p, data in written.items()), "the second run overwrote a file of the first"
    reader = EmbeddingReader(str(emb / "img_emb"), file_format="npy")
    assert reader.count == first.metrics["rows_embedded"] + second.metrics["rows_embedded"] == 18


def test_a_tar_added_later_is_scored_and_no_finished_tar_is_renumbered(
    sail: LakeSession, i2d: Img2Dataset, head: Path, tmp_path: Path
) -> None:
    folder, lake = tmp_path / "named", tmp_path / "lake"
    folder.mkdir()
    shutil.copy2(i2d.a / "00000.tar", folder / "night.tar")  # names that are not NNNNN.tar, and no parquet beside
    run(sail, folder / "*.tar", head, lake)
    shutil.copy2(i2d.a / "00001.tar", folder / "day.tar")  # sorts before night.tar
    rerun = run(sail, folder / "*.tar", head, lake)
    assert (rerun.metrics["tars_skipped"], rerun.metrics["tars_scored"]) == (1, 1)
    ledger = read(lake / IMAGE_TARS_TABLE).set_index("tar")
    assert sorted(Path(t).name for t in ledger.index) == ["day.tar", "night.tar"]
    tags = read(lake / IMAGE_TAGS_TABLE)
    assert tags.groupby("shard").size().to_dict() == ledger.set_index("shard")["embedded"].to_dict()
    assert ledger.loc[str((folder / "day.tar").resolve()), "embedded"] == 3  # 00001.tar: 3 images in the tar


def test_img2dataset_failures_reach_the_summary_and_image_errors(scored_a, i2d: Img2Dataset) -> None:
    out, summary = scored_a
    m = summary.metrics
    assert m["rows_in"] == sum(len(r) for r in i2d.rows["a"].values()) == 12
    assert (m["rows_embedded"], m["rows_failed_in_tar"], m["rows_failed_before_tar"]) == (9, 0, 3)
    assert m["rows_in"] == m["rows_embedded"] + m["rows_failed_in_tar"] + m["rows_failed_before_tar"]
    assert (m["failed_not_downloaded"], m["failed_not_resized"]) == (1, 2)
    errors = read(out / "lake" / IMAGE_ERRORS_TABLE).set_index("url")
    recorded = {u: r for u, r in i2d.by_url("a").items() if r["status"] != "success"}
    assert sorted(errors.index) == sorted(recorded)
    for url, row in recorded.items():
        assert (errors.loc[url, "status"], errors.loc[url, "error_message"]) == (row["status"], row["error_message"])
        assert errors.loc[url, "key"] == row["key"] and errors.loc[url, "caption"] == row["caption"]
    assert set(errors["kind"]) == {"not_downloaded", "not_resized"}


def test_img2dataset_failures_before_and_in_the_tar_add_up(
    sail: LakeSession, i2d: Img2Dataset, head: Path, tmp_path: Path
) -> None:
    summary = run(sail, i2d.b / "*.tar", head, tmp_path / "lake")
    m = summary.metrics
    assert (m["rows_in"], m["rows_embedded"], m["rows_failed_in_tar"], m["rows_failed_before_tar"]) == (12, 9, 2, 1)
    errors = read(tmp_path / "lake" / IMAGE_ERRORS_TABLE)
    kinds = {what(u): k for u, k in zip(errors["url"], errors["kind"], strict=True)}
    assert kinds == {**FAILED_IN_TAR, "missing": "not_downloaded"}


def test_image_errors_exists_after_a_run_without_failures(
    sail: LakeSession, i2d: Img2Dataset, head: Path, tmp_path: Path
) -> None:
    (tmp_path / "clean").mkdir()
    shutil.copy2(i2d.a / "00001.tar", tmp_path / "clean" / "00001.tar")  # its images all decode; no parquet
    summary = run(sail, tmp_path / "clean" / "*.tar", head, tmp_path / "lake")
    assert (summary.metrics["rows_embedded"], summary.metrics["rows_failed"]) == (3, 0)
    for name in TABLES:
        assert (tmp_path / "lake" / name / "_delta_log").is_dir(), name
    assert len(read(tmp_path / "lake" / IMAGE_ERRORS_TABLE)) == 0
    assert {"hash", "key", "url", "error", "kind", "status", "error_message"} <= set(
        read(tmp_path / "lake" / IMAGE_ERRORS_TABLE).columns
    )


def test_tags_and_embedding_metadata_carry_img2dataset_fields(scored_a, i2d: Img2Dataset) -> None:
    out, _ = scored_a
    recorded = i2d.by_url("a")
    tags = read(out / "lake" / IMAGE_TAGS_TABLE)
    assert len(tags) == 9
    for row in tags.to_dict("records"):
        source = recorded[row["url"]]
        assert (row["key"], row["caption"], row["sha256"], row["status"]) == (
            source["key"], source["caption"], source["sha256"], "success"
        )  # fmt: skip
        assert (row["WIDTH"], row["HEIGHT"]) == (source["original_width"], source["original_height"])
        assert (row["similarity"], row["LANGUAGE"]) == (source["similarity"], source["LANGUAGE"])
    sizes = {u: i2d.site.sizes[u.rsplit("/", 1)[1]] for u in recorded if what(u) == "ok"}
    assert {
        u: (w, h) for u, w, h in zip(tags["url"], tags["WIDTH"], tags["HEIGHT"], strict=True) if u in sizes
    } == sizes
    metadata = pd.concat([pq.read_table(p).to_pandas() for p in sorted((out / "emb" / "metadata").glob("*.parquet"))])
    clip_retrieval = ["image_path", "caption", "url", "key", "status", "error_message", "width", "height"]
    clip_retrieval += ["original_width", "original_height", "exif", "sha256", "similarity", "LANGUAGE"]
    assert list(metadata.columns) == clip_retrieval
    assert sorted(metadata["url"]) == sorted(tags["url"]) and (metadata["image_path"] == metadata["key"]).all()
    assert set(zip(metadata["width"], metadata["height"], strict=True)) == {(64, 64)}  # img2dataset's resized size
    for row in metadata.to_dict("records"):
        assert (row["original_width"], row["original_height"], row["sha256"]) == (
            recorded[row["url"]]["original_width"], recorded[row["url"]]["original_height"], recorded[row["url"]]["sha256"]
        )  # fmt: skip


def test_embedding_reader_reads_the_written_embeddings_with_their_metadata(scored_a) -> None:
    out, summary = scored_a
    reader = EmbeddingReader(
        str(out / "emb" / "img_emb"),
        file_format="parquet_npy",
        metadata_folder=str(out / "emb" / "metadata"),
        meta_columns=["url", "caption", "original_width", "similarity"],
    )
    batches = list(reader(batch_size=4, start=0, end=reader.count, show_progress=False))
    embeddings = np.concatenate([b[0] for b in batches])
    meta = pd.concat([b[1] for b in batches])
    assert reader.count == len(meta) == summary.metrics["rows_embedded"] == 9
    np.testing.assert_allclose(np.linalg.norm(embeddings.astype(np.float32), axis=1), 1.0, atol=2e-3)
    tags = read(out / "lake" / IMAGE_TAGS_TABLE).set_index("url")
    assert sorted(meta["url"]) == sorted(tags.index)
    assert (meta.set_index("url")["similarity"] == tags.loc[meta["url"], "similarity"]).all()


# --- tar identity: changed, forced, old ledgers ------------------------------------------------------------------


def test_a_finished_tar_changed_on_disk_is_refused_then_forced_replacing_exactly_its_rows(
    sail: LakeSession, i2d: Img2Dataset, head: Path, tmp_path: Path
) -> None:
    folder, lake = tmp_path / "images", tmp_path / "lake"
    folder.mkdir()
    for name in ("00000.tar", "00001.tar"):
        shutil.copy2(i2d.b / "00000.tar" if name == "00000.tar" else i2d.a / name, folder / name)
    run(sail, folder / "*.tar", head, lake)
    before = {t: read(lake / t) for t in TABLES}
    versions = {t: deltalake.DeltaTable(str(lake / t)).version() for t in TABLES}
    shutil.copy2(i2d.a / "00000.tar", folder / "00000.tar")  # another tar under a finished tar's name
    with pytest.raises(ShardsError, match=r"^1 tar\(s\) changed on disk since they were scored, first .*00000\.tar"):
        run(sail, folder / "*.tar", head, lake)
    assert {t: deltalake.DeltaTable(str(lake / t)).version() for t in TABLES} == versions

    forced = run(sail, folder / "00000.tar", head, lake, force=True)
    assert (forced.metrics["tars_scored"], forced.metrics["rows_in"], forced.metrics["rows_embedded"]) == (1, 6, 6)
    tags, ledger = read(lake / IMAGE_TAGS_TABLE), read(lake / IMAGE_TARS_TABLE).set_index("tar")
    changed, kept = (str((folder / n).resolve()) for n in ("00000.tar", "00001.tar"))
    assert len(ledger) == 2 and ledger.loc[changed, "mtime_ns"] == os.stat(folder / "00000.tar").st_mtime_ns
    shard = ledger.loc[changed, "shard"]
    assert len(tags[tags["shard"] == shard]) == 6 and not tags.duplicated(["shard", "key"]).any()
    other = before[IMAGE_TAGS_TABLE][before[IMAGE_TAGS_TABLE]["shard"] == ledger.loc[kept, "shard"]]
    assert sorted(tags[tags["shard"] != shard]["hash"]) == sorted(other["hash"])  # the other tar's rows untouched
    assert run(sail, folder / "*.tar", head, lake).metrics["tars_skipped"] == 2


def test_cli_refuses_a_changed_tar_in_one_line_and_force_rescores_it(
    cli_on_sail: None, i2d: Img2Dataset, head: Path, tmp_path: Path
) -> None:
    folder, lake = tmp_path / "images", tmp_path / "lake"
    folder.mkdir()
    shutil.copy2(i2d.a / "00001.tar", folder / "00001.tar")
    args = ["score-images", "--shards", str(folder / "*.tar"), "--model", TINY, "--head", str(head)]
    args += ["--lake", str(lake), "--batch-size", "8"]
    assert CliRunner().invoke(app, args).exit_code == 0
    os.utime(folder / "00001.tar", ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))  # touched: same bytes
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.count("\n") == 1 and str((folder / "00001.tar").resolve()) in refused.stderr
    assert refused.stderr.startswith("error: 1 tar(s) changed on disk since they were scored")
    forced = CliRunner().invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert re.search(r"tars_scored\s+1\n", forced.stdout) and re.search(r"rows_embedded\s+3\n", forced.stdout)
    ledger = read(lake / IMAGE_TARS_TABLE)
    assert ledger["mtime_ns"].tolist() == [1_700_000_000_000_000_000] and len(read(lake / IMAGE_TAGS_TABLE)) == 3


@pytest.mark.parametrize(
    ("plant", "message"),
    [
        ("00000.parquet", "00000.parquet: img2dataset's listing of its tar is not readable parquet"),
        ("00000_stats.json", "00000_stats.json: not img2dataset's stats"),
    ],
)
def test_cli_refuses_a_broken_listing_or_stats_before_writing(
    cli_on_sail: None, i2d: Img2Dataset, head: Path, tmp_path: Path, plant: str, message: str
) -> None:
    folder = tmp_path / "images"
    shutil.copytree(i2d.a, folder)
    (folder / plant).write_bytes(b"{ broken")
    args = ["score-images", "--shards", str(folder / "*.tar"), "--model", TINY, "--head", str(head)]
    result = CliRunner().invoke(app, [*args, "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "lake").exists()


def test_a_lake_from_before_tar_identities_is_refused_with_what_to_do(
    sail: LakeSession, i2d: Img2Dataset, head: Path, tmp_path: Path
) -> None:
    """The old ledger had no size or mtime and int shard numbers by sorted position: it cannot be trusted."""
    old = pa.table(
        {
            "shard": pa.array([0], pa.int32()),
            "tar": [str(i2d.a / "00000.tar")],
            "rows": [6],
            "embedded": [6],
            "failed": [0],
            "model": [TINY + ":random"],
            "run_id": ["old"],
            "embeddings": pa.array([None], pa.string()),
            "head": ["tiny-head"],
            "collection": ["images"],
        }
    )
    write_table(sail, sail.spark.createDataFrame(old.to_pandas(), from_arrow_schema(old.schema)), tmp_path / "lake" / IMAGE_TARS_TABLE,
                partition_by=("head", "collection"))  # fmt: skip
    version = deltalake.DeltaTable(str(tmp_path / "lake" / IMAGE_TARS_TABLE)).version()
    with pytest.raises(ShardsError, match=r"image_tars: written by an older score-images \(no shard, size, mtime_ns"):
        run(sail, i2d.a / "*.tar", head, tmp_path / "lake")
    assert deltalake.DeltaTable(str(tmp_path / "lake" / IMAGE_TARS_TABLE)).version() == version
    assert sorted(p.name for p in (tmp_path / "lake").iterdir()) == [IMAGE_TARS_TABLE]


def test_additional_columns_join_an_existing_table_and_one_of_another_type_is_refused(
    sail: LakeSession, i2d: Img2Dataset, head: Path, tmp_path: Path
) -> None:
    lake, bare = tmp_path / "lake", tmp_path / "bare"
    bare.mkdir()
    shutil.copy2(i2d.a / "00001.tar", bare / "00001.tar")  # no listing: no additional column
    run(sail, bare / "*.tar", head, lake)
    run(sail, i2d.a / "*.tar", head, lake)  # similarity and LANGUAGE join the table, the bare rows null there
    tags = read(lake / IMAGE_TAGS_TABLE)
    assert len(tags) == 3 + 9 and tags["similarity"].isna().sum() == 3 and tags["LANGUAGE"].notna().sum() == 9

    other = tmp_path / "other" / "images"
    shutil.copytree(i2d.a, other)
    for listing in other.glob("*.parquet"):
        table = pq.read_table(listing)
        index = table.column_names.index("similarity")
        pq.write_table(table.set_column(index, "similarity", pa.array(["high"] * table.num_rows)), listing)
    versions = {t: deltalake.DeltaTable(str(lake / t)).version() for t in TABLES}
    with pytest.raises(
        ShardsError, match="column similarity is double, but this run's img2dataset listings give string"
    ):
        run(sail, other / "*.tar", head, lake)
    assert {t: deltalake.DeltaTable(str(lake / t)).version() for t in TABLES} == versions
