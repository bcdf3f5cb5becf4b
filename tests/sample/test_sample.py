"""`laion-spark sample`: deterministic LAION-shaped metadata, tags, embeddings and webdataset shards."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections import Counter
from pathlib import Path

import matplotlib
import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from laion_spark.aesthetic.buckets import PUBLISHED_2B_EN
from laion_spark.aesthetic.heads import load_head
from laion_spark.aesthetic.shards import discover_shards
from laion_spark.cli.app import app
from laion_spark.lake.collections import raw_schema
from laion_spark.lake.layout import COLLECTIONS
from laion_spark.sample import (
    EMBEDDING_METADATA_SCHEMA,
    TAG_SCHEMAS,
    SampleError,
    bucket_counts,
    generate_sample,
    published_proportions,
)
from laion_spark.sample.distribution import bucket_quotas
from laion_spark.sample.webdataset import BAD_MEMBERS

ROWS = 20_000
_PART = re.compile(
    r"^part-000\d\d-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-c000\.snappy\.parquet$"
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 20,000-row sample with the synthetic head, shared by the read-only tests."""
    out = tmp_path_factory.mktemp("sample")
    return out, generate_sample(out, ROWS, seed=11)


def _metadata(out: Path, collection: str) -> pa.Table:
    return pq.read_table(out / "metadata" / collection)


def _hash(url: str | None, text: str | None) -> int:
    """LAION's hash, computed independently of laion_spark.lake.hashing."""
    return mmh3.hash64(((url or "") + (text or "")).encode("utf-8"))[0]


def _metadata_hashes(out: Path, collection: str) -> set[int]:
    raw = _metadata(out, collection)
    return {_hash(u, t) for u, t in zip(raw["URL"].to_pylist(), raw["TEXT"].to_pylist(), strict=True)}


def _embedding_hashes(meta: pa.Table) -> list[int]:
    return [_hash(u, c) for u, c in zip(meta["url"].to_pylist(), meta["caption"].to_pylist(), strict=True)]


def _embedded(out: Path, collection: str) -> tuple[np.ndarray, pa.Table]:
    shards = discover_shards(out / "embeddings" / collection)
    emb = np.concatenate([s.embeddings() for s in shards])
    meta = pa.concat_tables([pq.read_table(s.metadata) for s in shards])
    return emb, meta


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    generate_sample(tmp_path / "a", 300, seed=5)
    generate_sample(tmp_path / "b", 300, seed=5)
    first, second = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert len(first) > 30
    assert first == second


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    generate_sample(tmp_path / "a", 300, seed=5)
    generate_sample(tmp_path / "b", 300, seed=6)
    for collection in COLLECTIONS:
        a, b = _metadata(tmp_path / "a", collection), _metadata(tmp_path / "b", collection)
        assert a["URL"].to_pylist() != b["URL"].to_pylist()
    emb_a = discover_shards(tmp_path / "a" / "embeddings" / "laion2B-en")[0].embeddings()
    emb_b = discover_shards(tmp_path / "b" / "embeddings" / "laion2B-en")[0].embeddings()
    assert not np.array_equal(emb_a[:10], emb_b[:10])


def test_metadata_files_follow_laion_naming_and_raw_schema(sample: tuple[Path, dict]) -> None:
    out, manifest = sample
    for collection in COLLECTIONS:
        files = manifest["collections"][collection]["metadata"]["files"]
        assert sorted(p.name for p in (out / "metadata" / collection).iterdir()) == sorted(Path(f).name for f in files)
        assert len(files) == 2 and all(_PART.match(Path(f).name) for f in files)
        for f in files:
            assert pq.read_schema(out / f).remove_metadata() == raw_schema(collection)
        assert sum(pq.ParquetFile(out / f).metadata.num_rows for f in files) == ROWS


def test_raw_files_hold_the_width_under_height(sample: tuple[Path, dict]) -> None:
    out, manifest = sample
    for collection in COLLECTIONS:
        raw = _metadata(out, collection).to_pandas()
        probe = manifest["collections"][collection]["metadata"]["true_size_probe"]
        row = raw.loc[raw["SAMPLE_ID"] == probe["SAMPLE_ID"]].iloc[0]
        assert (row["HEIGHT"], row["WIDTH"]) == (probe["width"], probe["height"])
        assert (raw["HEIGHT"] > raw["WIDTH"]).mean() > 0.5  # landscape images dominate; raw columns are swapped
        _, emb_meta = _embedded(out, collection)
        embedded = emb_meta.to_pandas()
        # embedding metadata carries the true size: it must find its raw row with width under HEIGHT
        found = embedded.merge(
            raw, left_on=["url", "caption", "width", "height"], right_on=["URL", "TEXT", "HEIGHT", "WIDTH"]
        )
        assert set(found["key"]) == set(embedded["key"])


def test_metadata_quirks_match_the_manifest(sample: tuple[Path, dict]) -> None:
    out, manifest = sample
    for collection in COLLECTIONS:
        raw = _metadata(out, collection).to_pandas()
        quirks = manifest["collections"][collection]["metadata"]["quirks"]
        url_null, text_null = raw["URL"].isna(), raw["TEXT"].isna()
        assert (url_null & text_null).sum() == quirks["both_null"] > 0
        assert (url_null & ~text_null).sum() == quirks["url_null"] > 0
        assert (text_null & ~url_null).sum() == quirks["text_null"] > 0
        pairs = raw.loc[~url_null & ~text_null, ["URL", "TEXT"]]
        assert len(pairs) - len(pairs.drop_duplicates()) == quirks["duplicate_pairs"] > 0
        non_ascii = raw["TEXT"].dropna().map(lambda t: not t.isascii())
        assert non_ascii.sum() == quirks["non_ascii_text"] > 0


def test_captions_include_accents_emoji_and_other_scripts(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    en = " ".join(_metadata(out, "laion2B-en")["TEXT"].drop_null().to_pylist())
    multi = _metadata(out, "laion2B-multi")
    text = " ".join(multi["TEXT"].drop_null().to_pylist())
    assert re.search("[éüñç]", en) and re.search("[\U0001f300-\U0001faff]", en)
    assert re.search("[\u3040-\u30ff]", text) and re.search("[\u0400-\u04ff]", text)
    assert set(multi["LANGUAGE"].to_pylist()) >= {"de", "fr", "ru", "ja"}


def test_metadata_values_are_in_laion_ranges(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    raw = _metadata(out, "laion2B-en").to_pandas()
    assert raw["SAMPLE_ID"].is_unique
    assert raw["similarity"].between(0.28, 0.45).all()
    assert set(raw["NSFW"]) == {"UNLIKELY", "UNSURE", "NSFW"}
    assert (raw["LICENSE"] == "?").mean() > 0.8
    assert raw["URL"].dropna().str.match(r"^https?://[^/]+/").all()


def test_tag_tables_carry_the_planted_duplicates_orphans_and_gaps(sample: tuple[Path, dict]) -> None:
    out, manifest = sample
    for collection in COLLECTIONS:
        metadata_hashes = _metadata_hashes(out, collection)
        for tag, schema in TAG_SCHEMAS.items():
            counts = manifest["collections"][collection]["tags"][tag]
            table = pq.read_table(out / counts["path"])
            assert table.schema.remove_metadata() == schema
            frame = table.to_pandas()
            value = schema.names[1]
            assert len(frame) == counts["rows"]
            extra_rows = len(frame) - frame["hash"].nunique()
            exact = len(frame) - len(frame.drop_duplicates())
            assert exact == counts["duplicate_exact"] > 0
            assert extra_rows - exact == counts["duplicate_conflicting"] > 0
            conflicting = frame.drop_duplicates().groupby("hash")[value].nunique()
            assert (conflicting > 1).sum() == counts["duplicate_conflicting"]
            hashes = set(frame["hash"])
            assert len(hashes - metadata_hashes) == counts["orphans"] > 0
            assert len(metadata_hashes - hashes) == counts["missing"] > 0


def test_watermark_and_safety_tags_leave_out_about_five_percent_of_metadata(sample: tuple[Path, dict]) -> None:
    out, manifest = sample
    distinct = len(_metadata_hashes(out, "laion2B-en"))
    for tag in ("watermark", "safety"):
        assert 0.04 < manifest["collections"]["laion2B-en"]["tags"][tag]["missing"] / distinct < 0.06


def test_watermark_and_safety_shares_above_the_subset_thresholds(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    watermark = pq.read_table(out / "tags" / "laion2B-en" / "watermark")["pwatermark"].to_numpy()
    safety = pq.read_table(out / "tags" / "laion2B-en" / "safety")["prediction"].to_numpy()
    assert 0.08 < (watermark >= 0.8).mean() < 0.12
    assert 0.035 < (safety >= 0.5).mean() < 0.065
    assert watermark.min() >= 0 and watermark.max() <= 1 and safety.min() >= 0 and safety.max() <= 1


def test_embeddings_are_unit_fp16_rows_aligned_with_the_metadata(sample: tuple[Path, dict]) -> None:
    out, manifest = sample
    for collection in COLLECTIONS:
        shards = discover_shards(out / "embeddings" / collection)
        assert len(shards) == 4
        assert all(s.embeddings().shape == (s.metadata_rows(), 768) for s in shards)
        emb, meta = _embedded(out, collection)
        assert emb.dtype == np.float16 and len(emb) == manifest["collections"][collection]["embeddings"]["rows"]
        assert np.allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1.0, atol=2e-3)
        assert pq.read_schema(shards[0].metadata).remove_metadata() == EMBEDDING_METADATA_SCHEMA
        assert set(_embedding_hashes(meta)) <= _metadata_hashes(out, collection)
        assert meta["key"].to_pylist()[:2] == ["000000000", "000000001"]
        assert 0.7 < len(emb) / ROWS < 0.9


def test_aesthetic_tags_are_the_head_scores_of_the_embeddings(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    head = load_head(out / "heads" / "synthetic-l14.pth")
    emb, meta = _embedded(out, "laion2B-en")
    scores = dict(zip(_embedding_hashes(meta), head.score(emb).tolist(), strict=True))
    tags = pq.read_table(out / "tags" / "laion2B-en" / "aesthetic").to_pandas()
    tagged = tags[tags["hash"].isin(scores.keys())].drop_duplicates("hash", keep=False)
    assert len(tagged) > 0.95 * len(scores)
    # Head.score's float32 matmul may differ in the last bit with the batch size (here: all shards at once)
    assert np.allclose(tagged["aesthetic"], [scores[h] for h in tagged["hash"]], rtol=0, atol=1e-5)


def _proportions(scores: np.ndarray) -> np.ndarray:
    counts = bucket_counts(scores)
    return np.array([counts[b] for b in PUBLISHED_2B_EN]) / len(scores)


def test_synthetic_head_scores_follow_the_published_distribution(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    head = load_head(out / "heads" / "synthetic-l14.pth")
    for collection in COLLECTIONS:
        emb, _ = _embedded(out, collection)
        scores = head.score(emb)
        assert scores.min() >= 0.0 and scores.max() < 10.0
        assert np.abs(_proportions(scores) - published_proportions()).max() < 2e-3


def test_real_laion_head_scores_follow_the_published_distribution(tmp_path: Path, reference: Path) -> None:
    path = reference / "sa_0_4_vit_l_14_linear.pth"
    manifest = generate_sample(tmp_path, 5_000, seed=3, head=path)
    assert manifest["head"]["kind"] == "laion" and not (tmp_path / "heads").exists()
    emb, _ = _embedded(tmp_path, "laion2B-multi")
    assert np.abs(_proportions(load_head(path).score(emb)) - published_proportions()).max() < 3e-3


def test_bucket_mean_embeddings_differ_beyond_the_head_direction(sample: tuple[Path, dict]) -> None:
    out, _ = sample
    head = load_head(out / "heads" / "synthetic-l14.pth")
    emb, _ = _embedded(out, "laion2B-en")
    emb = emb.astype(np.float32)
    scores = head.score(emb)
    w_hat = head.weight / np.linalg.norm(head.weight)
    means = []
    for bucket in (2, 7):
        mean = emb[np.floor(scores) == bucket].mean(axis=0)
        mean -= (mean @ w_hat) * w_hat  # what remains once the head's own direction is removed
        means.append(mean / np.linalg.norm(mean))
    assert means[0] @ means[1] < 0.9


def test_bucket_quotas_sum_to_the_rows_in_published_proportions() -> None:
    quotas = bucket_quotas(12_345)
    assert quotas.sum() == 12_345
    assert np.abs(quotas - published_proportions() * 12_345).max() < 1


def _tar_members(path: Path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return {m.name: (m, tar.extractfile(m).read()) for m in tar.getmembers()}


def test_webdataset_images_decode_except_the_planted_bad_members(sample: tuple[Path, dict]) -> None:
    out, manifest = sample
    web = manifest["webdataset"]
    raw = _metadata(out, "laion2B-en").to_pandas()
    bad = web["bad_members"]
    assert sorted(bad) == sorted(BAD_MEMBERS) and web["corrupt_keys"] == sorted(bad.values())
    broken, decoded, formats = {}, 0, Counter()
    for tar in web["tars"]:
        members = _tar_members(out / tar)
        assert {(m.mtime, m.uid, m.gid, m.uname) for m, _ in members.values()} == {(1_640_995_200, 0, 0, "bigdata")}
        for name, (_, data) in members.items():
            key, kind = name.split(".", 1)
            if kind in ("txt", "json"):
                continue
            formats[kind] += 1
            record = json.loads(members[f"{key}.json"][1])
            assert record["key"] == key
            assert ((raw["URL"] == record["url"]) & (raw["TEXT"] == record["caption"])).any()
            if key == bad["missing_caption"]:
                assert f"{key}.txt" not in members
            else:
                assert members[f"{key}.txt"][1].decode("utf-8") == record["caption"]
            if kind == "bmp":
                broken[key] = "unknown_member"
                continue
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
                    assert image.format == {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[kind]
                    assert image.size == (record["width"], record["height"])
                    if key not in web["photos"] or web["photos"][key].endswith("crop"):
                        assert min(image.size) >= 64 and max(image.size) <= 256
                decoded += 1
            except OSError as err:
                broken[key] = "empty_image" if not data else "truncated_image" if "truncated" in str(err) else "other"
    # the undecodable bytes are no image at all; the empty one has no bytes; the truncated one stops early
    assert broken == {
        bad["unknown_member"]: "unknown_member",
        bad["empty_image"]: "empty_image",
        bad["undecodable_image"]: "other",
        bad["truncated_image"]: "truncated_image",
    }
    assert decoded + len(broken) == web["samples"] == 64
    assert dict(formats) == web["formats"] and formats["png"] >= 3 and formats["webp"] >= 3


def test_webdataset_holds_matplotlibs_photographs_byte_for_byte(sample: tuple[Path, dict]) -> None:
    out, manifest = sample
    photos = manifest["webdataset"]["photos"]
    members = {}
    for tar in manifest["webdataset"]["tars"]:
        images = {n: d for n, (_, d) in _tar_members(out / tar).items() if n.endswith((".jpg", ".png", ".webp"))}
        members.update({name.split(".")[0]: data for name, data in images.items()})
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
        (key,) = [k for k, source in photos.items() if source == name]
        assert members[key] == (sample_data / name).read_bytes()
    assert sum(source.endswith("crop") for source in photos.values()) == 4


def test_refuses_a_non_empty_folder_that_is_not_a_sample(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(SampleError, match="not empty"):
        generate_sample(tmp_path, 200, seed=1, overwrite=True)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_overwrite_replaces_every_file_of_a_previous_sample(tmp_path: Path) -> None:
    generate_sample(tmp_path, 200, seed=1, shards=4)
    generate_sample(tmp_path, 200, seed=2, shards=2, overwrite=True)
    assert len(list((tmp_path / "embeddings" / "laion2B-en" / "img_emb").iterdir())) == 2
    assert len(list((tmp_path / "metadata" / "laion2B-en").iterdir())) == 2
    assert json.loads((tmp_path / "sample.json").read_text(encoding="utf-8"))["seed"] == 2


def test_cli_writes_a_sample_and_prints_where(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["sample", "--out", str(tmp_path), "--rows", "150", "--seed", "2", "--shards", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "laion2B-multi" in result.output and str(tmp_path / "sample.json") in result.output
    manifest = json.loads((tmp_path / "sample.json").read_text(encoding="utf-8"))
    assert manifest["rows"] == 150 and manifest["collections"]["laion1B-nolang"]["embeddings"]["shards"] == 2


def test_cli_rejects_fewer_than_100_rows(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sample", "--out", str(tmp_path / "s"), "--rows", "99"])
    assert result.exit_code == 2
    assert "--rows" in result.stderr and "greater than or equal to 100" in result.stderr, result.stderr
    assert not (tmp_path / "s").exists()


def test_cli_rejects_an_unreadable_head(tmp_path: Path) -> None:
    bad = tmp_path / "head.pth"
    bad.write_bytes(b"not a torch file")
    result = CliRunner().invoke(app, ["sample", "--out", str(tmp_path / "s"), "--rows", "100", "--head", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and f"{bad}: not a readable torch state dict" in result.stderr
    assert not (tmp_path / "s").exists()
