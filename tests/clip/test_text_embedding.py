"""Caption embeddings: dynamic padding equals full padding, the Spark path equals plain open_clip, one model load."""

from __future__ import annotations

import re
from pathlib import Path

import deltalake
import numpy as np
import open_clip
import pyarrow as pa
import pytest
import torch
from clip_builders import CAPTIONS, TINY
from typer.testing import CliRunner

from laion_spark.cli import app
from laion_spark.clip import embed_text, embed_text_frame, encode_captions, load_model, model_loads
from laion_spark.clip.model import ModelSpec, _build
from laion_spark.clip.params import EmbedText
from laion_spark.clip.text import _embed_windows
from laion_spark.engine.session import LakeSession
from laion_spark.errors import InputError
from laion_spark.lake.tables import TableNotFoundError, write_table

#: LAION-like caption lengths: mostly short, a long tail, some past the 77-token context.
LAION_LIKE = [
    *CAPTIONS,
    "Vintage Wedding Table Decorations Pictures",
    "a photo of " + "a very long and winding caption with many words " * 12,
    "Cake Table Decoration Ideas",
    "🌅🌅🌅",
]


@pytest.fixture(scope="module")
def clip():
    return load_model(ModelSpec.parse(TINY), "cpu")


@pytest.mark.parametrize("mode", ["pooled", "projected"])
def test_dynamic_padding_equals_the_full_77_token_encoding(clip, mode: str) -> None:
    captions = LAION_LIKE * 3
    dynamic, valid = encode_captions(clip, captions, mode=mode, batch_size=4)
    full, _ = encode_captions(clip, captions, mode=mode, batch_size=4, padding="full")
    assert valid.all() and dynamic.shape == (len(captions), 64 if mode == "pooled" else 768)
    np.testing.assert_allclose(dynamic, full, atol=1e-5, rtol=0)


def test_projected_equals_open_clips_encode_text_and_pooled_is_ln_final_at_the_end_token(clip) -> None:
    tokens = open_clip.get_tokenizer(TINY)(LAION_LIKE)
    model = clip.model
    with torch.no_grad():
        expected = model.encode_text(tokens, normalize=True).numpy()
        x = model.token_embedding(tokens) + model.positional_embedding
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
        pooled = x[torch.arange(len(tokens)), tokens.argmax(dim=-1)].numpy()
    projected, _ = encode_captions(clip, LAION_LIKE, mode="projected", batch_size=4)
    np.testing.assert_allclose(projected, expected, atol=1e-5)
    np.testing.assert_allclose(encode_captions(clip, LAION_LIKE, mode="pooled")[0], pooled, atol=1e-5)


def test_null_captions_give_zero_rows_and_a_false_mask_in_input_order(clip) -> None:
    captions = ["a cat", None, "a much longer caption about a dog on a beach", None, ""]
    out, valid = encode_captions(clip, captions, mode="projected", batch_size=2)
    assert valid.tolist() == [True, False, True, False, True]
    assert not out[~valid].any()
    alone = encode_captions(clip, ["a much longer caption about a dog on a beach"], mode="projected")[0]
    np.testing.assert_allclose(out[2], alone[0], atol=1e-6)


def _captions_frame(lake: LakeSession, rows: int, partitions: int):
    text = [None if i % 11 == 4 else LAION_LIKE[i % len(LAION_LIKE)] + f" {i}" for i in range(rows)]
    table = pa.table({"id": list(range(rows)), "TEXT": text})
    return lake.spark.createDataFrame(table.to_pandas()).repartition(partitions), text


def test_the_spark_path_equals_the_plain_loop_and_two_tasks_and_two_jobs_share_one_load(
    sail: LakeSession, tmp_path: Path
) -> None:
    torch.save(_build(ModelSpec.parse(TINY), "cpu", "fp32").model.state_dict(), tmp_path / "tiny.pt")
    spec = ModelSpec.parse(f"{TINY}:{tmp_path / 'tiny.pt'}")  # a cache key of its own: no earlier load
    df, text = _captions_frame(sail, 60, 2)
    embedded = embed_text_frame(df, "TEXT", spec, mode="projected", batch_size=8, output="emb")
    first = embedded.toArrow().sort_by("id")
    second = embedded.toArrow().sort_by("id")  # a second job
    assert model_loads(spec, "cpu", "fp32") == 1
    assert first.column_names == ["id", "TEXT", "emb"] and first.equals(second)
    expected, valid = encode_captions(load_model(spec, "cpu"), text, mode="projected", padding="full")
    got = first.column("emb").to_pylist()
    assert [g is None for g in got] == (~valid).tolist()
    np.testing.assert_allclose(np.array([g for g in got if g is not None]), expected[valid], atol=1e-5)


def test_windows_of_a_partition_keep_every_batch_and_row_in_order() -> None:
    text = [None if i % 11 == 4 else LAION_LIKE[i % len(LAION_LIKE)] + f" {i}" for i in range(45)]
    table = pa.table({"id": list(range(45)), "TEXT": text})
    batches = table.to_batches(max_chunksize=9)
    out = list(
        _embed_windows(
            iter(batches), column="TEXT", spec=ModelSpec.parse(TINY), mode="pooled", batch_size=4, output="e", window=10
        )
    )
    assert [b.num_rows for b in out] == [9] * 5  # flushed after 18, 36 and 45 rows
    joined = pa.Table.from_batches(out)
    assert joined.column("id").to_pylist() == list(range(45))
    expected, _ = encode_captions(load_model(ModelSpec.parse(TINY), "cpu"), text, mode="pooled")
    got = [np.zeros(64, np.float32) if g is None else g for g in joined.column("e").to_pylist()]
    np.testing.assert_allclose(np.array(got), expected, atol=1e-5)


def test_a_bad_column_mode_or_output_is_refused_before_any_work(sail: LakeSession) -> None:
    df, _ = _captions_frame(sail, 5, 1)
    with pytest.raises(InputError, match="missing column"):
        embed_text_frame(df, "CAPTION", TINY)
    with pytest.raises(InputError, match="id is bigint, expected string"):
        embed_text_frame(df, "id", TINY)
    with pytest.raises(InputError, match="mode 'mean'"):
        embed_text_frame(df, "TEXT", TINY, mode="mean")
    with pytest.raises(InputError, match="'id' already exists"):
        embed_text_frame(df, "TEXT", TINY, output="id")


def test_embed_text_writes_the_table_counts_null_captions_and_records_the_run(
    sail: LakeSession, tmp_path: Path
) -> None:
    df, text = _captions_frame(sail, 40, 2)
    write_table(sail, df, tmp_path / "lake" / "umap_sample", mode="overwrite")
    summary = embed_text(
        sail,
        EmbedText(
            table=tmp_path / "lake" / "umap_sample", column="TEXT", model=TINY, out=tmp_path / "lake" / "text_emb"
        ),
    )
    out = deltalake.DeltaTable(str(tmp_path / "lake" / "text_emb")).to_pandas().sort_values("id")
    nulls = sum(t is None for t in text)
    assert summary.metrics == {"rows_in": 40, "rows_embedded": 40 - nulls, "rows_null_caption": nulls}
    assert out["embedding"].isna().sum() == nulls and len(out["embedding"].dropna().iloc[0]) == 64
    runs = deltalake.DeltaTable(str(tmp_path / "lake" / "runs")).to_pandas()
    assert set(runs.loc[runs["run_id"] == summary.run_id, "job"]) == {"embed-text"}


def test_embed_text_refuses_a_missing_table_and_its_own_input_as_output(sail: LakeSession, tmp_path: Path) -> None:
    with pytest.raises(TableNotFoundError):
        embed_text(sail, EmbedText(table=tmp_path / "none", column="TEXT", model=TINY, out=tmp_path / "out"))
    df, _ = _captions_frame(sail, 5, 1)
    write_table(sail, df, tmp_path / "t", mode="overwrite")
    with pytest.raises(InputError, match="is the input table"):
        embed_text(sail, EmbedText(table=tmp_path / "t", column="TEXT", model=TINY, out=tmp_path / "t"))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_cli_embed_text_projected_and_its_bad_model_exit(cli_on_sail: None, sail: LakeSession, tmp_path: Path) -> None:
    df, _ = _captions_frame(sail, 12, 1)
    write_table(sail, df, tmp_path / "t", mode="overwrite")
    args = ["embed-text", "--table", str(tmp_path / "t"), "--column", "TEXT", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--model", TINY, "--mode", "projected"])
    assert result.exit_code == 0, result.output
    assert re.search(r"rows_embedded\s+11\n", result.stdout)
    out = deltalake.DeltaTable(str(tmp_path / "o")).to_pandas()
    assert len(out["embedding"].dropna().iloc[0]) == 768
    bad = CliRunner().invoke(app, [*args, "--model", "ViT-B-32:nope"])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and "model 'ViT-B-32:nope'" in bad.stderr
