"""score-images: tars -> embeddings -> scores in the lake; bad members counted; resume; CLI contract."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import deltalake
import mmh3
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from clip_builders import TINY, kill_when, linear_head, plain_image_embeddings, write_tars
from lake_checks import assert_same_tables
from typer.testing import CliRunner

from laion_spark.aesthetic.heads import load_head
from laion_spark.aesthetic.params import TAGS_TABLE, ScoreEmbeddings
from laion_spark.aesthetic.scoring import score_embeddings
from laion_spark.cli import app
from laion_spark.clip import job as clip_job
from laion_spark.clip import load_model, score_images
from laion_spark.clip.images import ImageJob, TarTask, score_tar
from laion_spark.clip.model import ModelSpec
from laion_spark.clip.params import IMAGE_ERRORS_TABLE, IMAGE_TAGS_TABLE, IMAGE_TARS_TABLE, ScoreImages
from laion_spark.engine.session import LakeSession
from laion_spark.errors import InputError, InvariantError
from laion_spark.sample.photos import encode
from laion_spark.sample.webdataset import render_image


@pytest.fixture(scope="module")
def tars(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Two tars of 32 samples: photographs, PNG and WebP members, one of each planted bad member."""
    folder = tmp_path_factory.mktemp("laion2B-en")
    return folder, write_tars(folder, 2)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return linear_head(tmp_path_factory.mktemp("head") / "tiny-head.pth")


@pytest.fixture(scope="module")
def scored(sail: LakeSession, tars: tuple[Path, dict], head: Path, tmp_path_factory: pytest.TempPathFactory):
    """One run over both tars, with the embeddings written."""
    out = tmp_path_factory.mktemp("run")
    summary = score_images(
        sail,
        ScoreImages(
            shards=tars[0] / "*.tar",
            model=TINY,
            head=head,
            lake=out / "lake",
            write_embeddings=out / "emb",
            batch_size=8,
        ),
    )
    return out, summary


def read(path: Path) -> pd.DataFrame:
    return deltalake.DeltaTable(str(path)).to_pandas()


def test_embeddings_equal_a_plain_open_clip_loop_over_the_same_images(scored, tars, head) -> None:
    out, _ = scored
    clip = load_model(ModelSpec.parse(TINY), "cpu")
    tags = read(out / "lake" / IMAGE_TAGS_TABLE).set_index("key")
    scorer = load_head(head)
    for shard in (0, 1):
        plain = plain_image_embeddings(clip, tars[0] / f"{shard:05d}.tar")
        meta = pq.read_table(out / "emb" / "metadata" / f"metadata_{shard:04d}.parquet").to_pandas()
        emb = np.load(out / "emb" / "img_emb" / f"img_emb_{shard:04d}.npy")
        assert emb.dtype == np.float16 and emb.shape == (len(meta), 768)
        expected = np.stack([plain[k] for k in meta["key"]])
        np.testing.assert_allclose(emb.astype(np.float32), expected, atol=1e-3)  # fp16 rounding
        np.testing.assert_allclose(tags.loc[meta["key"], "aesthetic"], scorer.score(expected), atol=1e-4)
        hashes = [mmh3.hash64((u + c).encode("utf-8"))[0] for u, c in zip(meta["url"], meta["caption"], strict=True)]
        assert tags.loc[meta["key"], "hash"].tolist() == hashes


def test_each_planted_bad_member_is_counted_and_rows_add_up(scored, tars) -> None:
    out, summary = scored
    bad = tars[1]["bad_members"]
    errors = read(out / "lake" / IMAGE_ERRORS_TABLE)
    assert dict(zip(errors["key"], errors["kind"], strict=True)) == {key: kind for kind, key in bad.items()}
    m = summary.metrics
    assert {k: v for k, v in m.items() if k.startswith("failed_")} == {f"failed_{kind}": 1 for kind in bad}
    assert (m["rows_in"], m["rows_embedded"], m["rows_failed"]) == (64, 59, 5)
    assert m["rows_in"] == m["rows_embedded"] + m["rows_failed"]
    tags = read(out / "lake" / IMAGE_TAGS_TABLE)
    assert len(tags) == 59 and not set(tags["key"]) & set(errors["key"])
    assert list(tags.columns) == [
        *["hash", "aesthetic", "key", "shard", "url", "caption", "WIDTH", "HEIGHT", "sha256", "status"],
        *["model", "source", "head", "collection"],
    ]
    assert tags["url"].str.startswith("https://").all() and tags["caption"].notna().all()
    assert set(zip(tags["WIDTH"], tags["HEIGHT"], strict=True)) == {(320, 240)}  # the records' original size
    assert set(tags["status"]) == {"success"} and tags["sha256"].isna().all()  # the records hold no sha256
    assert set(tags["source"]) == {"images"} and set(tags["model"]) == {"laion-spark-tiny:random"}
    assert set(tags["collection"]) == {tars[0].name} and set(tags["head"]) == {"tiny-head"}
    ledger = read(out / "lake" / IMAGE_TARS_TABLE).sort_values("tar")
    failed = [sum(key.startswith(f"{shard:05d}") for key in bad.values()) for shard in (0, 1)]
    assert [Path(t).name for t in ledger["tar"]] == ["00000.tar", "00001.tar"]
    assert ledger[["rows", "embedded", "failed", "failed_before_tar"]].values.tolist() == [
        [32, 32 - failed[shard], failed[shard], 0] for shard in (0, 1)
    ]
    assert ledger["size"].tolist() == [p.stat().st_size for p in sorted(tars[0].glob("*.tar"))]
    assert not (out / "lake" / "_staging").exists()


def test_photos_png_and_webp_members_are_embedded(scored, tars) -> None:
    out, _ = scored
    keys = set(read(out / "lake" / IMAGE_TAGS_TABLE)["key"])
    assert set(tars[1]["photos"]) <= keys and tars[1]["formats"]["webp"] >= 3


def test_score_embeddings_reads_the_written_shards_back(sail: LakeSession, scored, head) -> None:
    out, _ = scored
    score_embeddings(sail, ScoreEmbeddings(embeddings=out / "emb", head=head, lake=out / "reread"))
    again = read(out / "reread" / TAGS_TABLE).set_index("hash")["aesthetic"]
    from_images = read(out / "lake" / IMAGE_TAGS_TABLE).set_index("hash")["aesthetic"]
    assert len(again) == len(from_images) == 59
    np.testing.assert_allclose(again.loc[from_images.index], from_images, atol=0.02)  # fp16 embeddings


def test_a_rerun_skips_finished_tars_and_commits_nothing(sail: LakeSession, scored, tars, head) -> None:
    out, _ = scored
    versions = {t: deltalake.DeltaTable(str(out / "lake" / t)).version() for t in (IMAGE_TAGS_TABLE, IMAGE_TARS_TABLE)}
    again = score_images(
        sail,
        ScoreImages(shards=tars[0] / "*.tar", model=TINY, head=head, lake=out / "lake", write_embeddings=out / "emb"),
    )
    assert (again.metrics["tars_skipped"], again.metrics["tars_scored"], again.metrics["rows_skipped"]) == (2, 0, 64)
    assert {t: deltalake.DeltaTable(str(out / "lake" / t)).version() for t in versions} == versions


def test_a_crash_between_commits_resumes_from_the_staged_rows_without_duplicates(
    sail: LakeSession, tars, head, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = clip_job.write_table

    def crash_on_errors(lake, df, path, **kwargs):
        if str(path).endswith(IMAGE_ERRORS_TABLE) and not df.isEmpty():  # the commit, not the table's creation
            raise KeyboardInterrupt("killed between the two commits")
        return real(lake, df, path, **kwargs)

    monkeypatch.setattr(clip_job, "write_table", crash_on_errors)
    with pytest.raises(KeyboardInterrupt):
        score_images(
            sail,
            ScoreImages(shards=tars[0] / "*.tar", model=TINY, head=head, lake=tmp_path / "lake", tars_per_commit=2),
        )
    assert len(read(tmp_path / "lake" / IMAGE_TAGS_TABLE)) == 59
    monkeypatch.setattr(clip_job, "write_table", real)
    resumed = score_images(
        sail, ScoreImages(shards=tars[0] / "*.tar", model=TINY, head=head, lake=tmp_path / "lake", tars_per_commit=2)
    )

    assert resumed.metrics["infer_ms"] == 0, "staged tars are committed, not embedded again"
    assert (resumed.metrics["rows_embedded"], resumed.metrics["rows_failed"]) == (59, 5)
    tags, errors = read(tmp_path / "lake" / IMAGE_TAGS_TABLE), read(tmp_path / "lake" / IMAGE_ERRORS_TABLE)
    assert len(tags) == 59 and not tags.duplicated("key").any() and len(errors) == 5
    assert sorted(Path(t).name for t in read(tmp_path / "lake" / IMAGE_TARS_TABLE)["tar"]) == ["00000.tar", "00001.tar"]


def test_lake_rows_that_disagree_with_the_record_refuse_the_run_before_writing(
    sail: LakeSession, scored, tars, head
) -> None:
    out, _ = scored
    lake = out / "refuse"
    score_images(sail, ScoreImages(shards=tars[0] / "00000.tar", model=TINY, head=head, lake=lake))
    tags = deltalake.DeltaTable(str(lake / IMAGE_TAGS_TABLE))
    tags.delete("key = '000000000'")
    versions = {t: deltalake.DeltaTable(str(lake / t)).version() for t in (IMAGE_TAGS_TABLE, IMAGE_TARS_TABLE)}
    with pytest.raises(clip_job.ShardsError, match=r"1 tar\(s\) refused, first .*00000.tar \(shard \d+\)"):
        score_images(sail, ScoreImages(shards=tars[0] / "*.tar", model=TINY, head=head, lake=lake))
    assert {t: deltalake.DeltaTable(str(lake / t)).version() for t in versions} == versions


def test_rows_not_in_the_lake_exactly_once_are_an_invariant_error(
    sail: LakeSession, tars, head, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = clip_job._commit_group
    monkeypatch.setattr(clip_job, "_commit_group", lambda *a, **k: (real(*a, **k), real(*a, **k)))
    with pytest.raises(InvariantError, match="not in the lake exactly once") as caught:
        score_images(sail, ScoreImages(shards=tars[0] / "00001.tar", model=TINY, head=head, lake=tmp_path / "lake"))
    assert caught.value.summary.metrics["rows_in"] == 32
    runs = read(tmp_path / "lake" / "runs")
    assert caught.value.summary.run_id in set(runs["run_id"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shards": "nowhere/*.tar"}, "matched no file"),
        ({"shards": "FOLDER"}, "is a folder; give a glob"),
        ({"spec": "ViT-B-32:random"}, "takes 768-wide embeddings but model ViT-B-32:random gives 512"),
        ({"spec": "nope"}, "unknown open_clip architecture"),
        ({"batch_size": 0}, "batch_size: expected an integer >= 1, got 0"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    sail: LakeSession, tars, head, tmp_path: Path, change: dict, message: str
) -> None:
    args = {"shards": str(tars[0] / "*.tar"), "spec": TINY, "batch_size": 8, **change}
    if args["shards"] == "FOLDER":
        args["shards"] = str(tars[0])
    with pytest.raises(InputError, match=re.escape(message)):
        score_images(
            sail,
            ScoreImages(
                shards=args["shards"],
                model=args["spec"],
                head=head,
                lake=tmp_path / "lake",
                batch_size=args["batch_size"],
            ),
        )
    assert not (tmp_path / "lake").exists()


def test_cli_bad_input_exits_2_with_one_line_naming_it(cli_on_sail: None, tars, head, tmp_path: Path) -> None:
    base = ["score-images", "--head", str(head), "--lake", str(tmp_path / "lake")]
    for extra, culprit in (
        (["--shards", str(tmp_path / "*.tar"), "--model", TINY], "matched no file"),
        (["--shards", str(tars[0] / "*.tar"), "--model", "ViT-L-14"], "give the weights as ViT-L-14:TAG"),
    ):
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and culprit in result.stderr, result.stderr
    assert not (tmp_path / "lake").exists()


@pytest.mark.slow
def test_kill_mid_run_then_rerun_scores_each_tar_exactly_once(cli_on_sail: None, head: Path, tmp_path: Path) -> None:
    manifest = write_tars(tmp_path / "laion2B-en", 6, seed=4)
    lake = tmp_path / "lake"
    args = ["score-images", "--shards", str(tmp_path / "laion2B-en" / "*.tar"), "--model", TINY]
    args += ["--head", str(head), "--lake", str(lake), "--write-embeddings", str(tmp_path / "emb")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "laion_spark", *args, "--tars-per-commit", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LAION_SPARK_OFFLINE": "1"},
    )
    kill_when(proc, lake / IMAGE_TARS_TABLE / "_delta_log" / f"{1:020d}.json")  # 0: the table created empty
    committed = read(lake / IMAGE_TARS_TABLE)["shard"].nunique()
    assert 1 <= committed < 6, "the kill should land between the first and the last commit"

    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0, rerun.output
    assert re.search(rf"tars_skipped\s+{committed}\n", rerun.stdout), rerun.stdout
    tags, errors = read(lake / IMAGE_TAGS_TABLE), read(lake / IMAGE_ERRORS_TABLE)
    ledger = read(lake / IMAGE_TARS_TABLE)
    assert ledger["tar"].nunique() == ledger["shard"].nunique() == len(ledger) == 6 and ledger["rows"].sum() == 6 * 32
    assert not tags.duplicated(["shard", "key"]).any() and not errors.duplicated(["shard", "key"]).any()
    assert tags.groupby("shard").size().to_dict() == ledger.set_index("shard")["embedded"].to_dict()
    assert len(errors) == len(manifest["bad_members"])
    assert len(list((tmp_path / "emb" / "img_emb").glob("img_emb_*.npy"))) == 6
    assert not list((tmp_path / "emb").rglob(".*.part"))


@pytest.mark.classic
def test_classic_spark_scores_the_tars_as_sail_does(classic_run: Path, reference_run: Path) -> None:
    """score-images in classic Spark's Python workers: the same scores, errors and finished tars as on Sail."""
    assert_same_tables(classic_run, reference_run, [IMAGE_TAGS_TABLE, IMAGE_ERRORS_TABLE, IMAGE_TARS_TABLE])


def _jpeg(seed: int) -> bytes:
    return encode(render_image(np.random.default_rng(seed), 80, 64), "jpg")


#: key -> (.json bytes or None, .txt bytes, error kind): values that do not fit their column, and two good samples.
HOSTILE = {
    "good1": (b'{"url": "https://x/1", "width": 80, "height": 64, "original_width": 800}', b"one", None),
    "w_big": (b'{"url": "https://x/a", "width": 2147483648}', b"a", "bad_metadata"),
    "w_neg": (b'{"url": "https://x/b", "height": -1}', b"b", "bad_metadata"),
    "w_text": (b'{"url": "https://x/c", "width": "64"}', b"c", "bad_metadata"),
    "w_bool": (b'{"url": "https://x/d", "original_width": true}', b"d", "bad_metadata"),
    "w_frac": (b'{"url": "https://x/e", "original_height": 64.5}', b"e", "bad_metadata"),
    "w_nan": (b'{"url": "https://x/f", "width": NaN}', b"f", "bad_metadata"),
    "w_huge": (b'{"url": "https://x/g", "original_width": 1' + b"0" * 40 + b"}", b"g", "bad_metadata"),
    "url_num": (b'{"url": 5}', b"h", "bad_metadata"),
    "url_lone": (b'{"url": "https://x/\\ud800"}', b"i", "bad_metadata"),
    "status_list": (b'{"url": "https://x/j", "status": ["success"]}', b"j", "bad_metadata"),
    "sha_obj": (b'{"url": "https://x/k", "sha256": {}}', b"k", "bad_metadata"),
    "exif_num": (b'{"url": "https://x/l", "exif": 3}', b"l", "bad_metadata"),
    "deep": (b'{"url": "https://x/m", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"m", "bad_metadata"),
    "json_latin1": (b'{"url": "https://x/\xe9"}', b"n", "bad_metadata"),
    "txt_latin1": (b'{"url": "https://x/o"}', b"caf\xe9", "bad_metadata"),
    "good2": (None, b"two", None),
}


def _hostile_tar(path: Path) -> Path:
    """A tar of :data:`HOSTILE`, a sample named in bytes that are not UTF-8, one with two captions, and one whose
    members are all hard links (to good1's), each with a decodable JPEG."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for index, (key, (record, caption, _)) in enumerate(HOSTILE.items()):
            add(f"{key}.jpg", _jpeg(index))
            add(f"{key}.txt", caption)
            if record is not None:
                add(f"{key}.json", record)
        add("bad\udcffname.jpg", _jpeg(90))
        add("bad\udcffname.txt", b"name")
        for name, data in (("twice.jpg", _jpeg(91)), ("twice.txt", b"first"), ("twice.txt", b"second")):
            add(name, data)
        for kind in ("jpg", "txt", "json"):
            link = tarfile.TarInfo(f"linked.{kind}")
            link.type, link.linkname = tarfile.LNKTYPE, f"good1.{kind}"
            tar.addfile(link)
    return path


def test_values_that_do_not_fit_their_column_are_error_rows_naming_tar_and_key(
    sail: LakeSession, head: Path, tmp_path: Path
) -> None:
    """Issue 24: a .json width over int32 used to fail the whole run (PythonException, tar not named)."""
    (tmp_path / "shards").mkdir()
    tar = _hostile_tar(tmp_path / "shards" / "00000.tar")
    summary = score_images(sail, ScoreImages(shards=tar, model=TINY, head=head, lake=tmp_path / "lake", batch_size=8))
    expected = {key: kind for key, (_, _, kind) in HOSTILE.items() if kind}
    expected |= {"bad\\xffname": "bad_metadata", "twice": "unknown_member"}
    errors = read(tmp_path / "lake" / IMAGE_ERRORS_TABLE)
    assert dict(zip(errors["key"], errors["kind"], strict=True)) == expected
    for key, message in zip(errors["key"], errors["error"], strict=True):
        assert "00000.tar" in message and key in message, message
    tags = read(tmp_path / "lake" / IMAGE_TAGS_TABLE)
    assert sorted(tags["key"]) == ["good1", "good2", "linked"]
    m = summary.metrics
    assert (m["rows_in"], m["rows_embedded"], m["rows_failed"]) == (len(HOSTILE) + 3, 3, len(expected))


def test_a_tar_changed_since_the_plan_or_an_unreadable_listing_is_not_staged_and_says_why(
    tars, head, tmp_path: Path
) -> None:
    path = tars[0] / "00000.tar"
    stat = path.stat()
    stage = ScoreImages(shards=str(path), model=TINY, head=head, lake=tmp_path / "lake")
    job = ImageJob(stage=stage, spec=ModelSpec.parse(TINY), head=load_head(head), staging=str(tmp_path / "st"),
                   embeddings=None)  # fmt: skip
    clip = load_model(job.spec, "cpu")
    moved = TarTask(1, str(path), stat.st_size, stat.st_mtime_ns + 1)
    assert score_tar(moved, job, clip)["problem"] == f"{path}: changed on disk while this run read it; rerun"
    (tmp_path / "00000.parquet").write_bytes(b"PAR1 but not parquet")
    unreadable = TarTask(1, str(path), stat.st_size, stat.st_mtime_ns, str(tmp_path / "00000.parquet"))
    row = score_tar(unreadable, job, clip)
    assert row["problem"].startswith(f"{tmp_path / '00000.parquet'}: img2dataset's listing of 00000.tar cannot be read")
    assert row["rows"] == 0 and not (tmp_path / "st").exists()
    fine = score_tar(TarTask(1, str(path), stat.st_size, stat.st_mtime_ns), job, clip)
    assert (fine["problem"], fine["rows"]) == (None, 32) and job.staged(
        TarTask(1, str(path), stat.st_size, stat.st_mtime_ns)
    ).is_file()
