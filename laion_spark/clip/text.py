"""Caption embeddings with dynamic padding, as a Spark frame transform and as a plain function.

Captions are tokenised with the model's own tokenizer at its full context (77 tokens for CLIP, long
captions truncated with the end-of-text token kept), sorted by token count, cut into inference batches,
and each batch is run with only as many positions as its longest caption; results go back to input
order. CLIP's text transformer is causal (a token attends to the tokens before it only), so the
features at the end-of-text token do not depend on the padding after it: dynamic padding gives the full
77-token encoding up to floating-point reassociation -- about 1e-6 absolute in fp32 on the CPU
(tests/clip/test_text_embedding.py asserts 1e-5); in fp16 on a GPU, to fp16 rounding (~1e-3).

Modes:

* ``pooled`` -- ``ln_final`` at the end-of-text token, before the projection (width = the text
  transformer's, 512 for ViT-B/32): what ``CLIPTextModel.pooler_output`` gives, as the published
  laion-aesthetics-12m-umap pipeline used; not normalised.
* ``projected`` -- the CLIP text embedding (projected, width = the joint embedding's), L2-normalised.

Null captions give null embeddings (counted by :func:`laion_spark.clip.job.embed_text`); an empty
caption is a caption (start and end tokens).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from .batching import InferenceBatches
from .model import ClipModel, ModelSpec, ModelSpecError, load_model
from .params import TEXT_BATCH, TEXT_MODES, TEXT_WINDOW

log = logging.getLogger("laion_spark.clip")
_POOLS = ("argmax", "eos", "first")


@dataclass(frozen=True)
class TextTower:
    """The parts of an open_clip text transformer that a variable-length forward needs."""

    token_embedding: Any
    positional_embedding: torch.Tensor
    transformer: Any
    attn_mask: torch.Tensor
    ln_final: Any
    text_projection: Any
    pool_type: str
    eos_id: int | None

    @classmethod
    def of(cls, clip: ClipModel) -> TextTower:
        """The tower of ``clip.model`` (a ``CLIP``, or a ``CustomTextCLIP`` with open_clip's TextTransformer).

        Raises :class:`ModelSpecError` for a text tower that is not causal, pools other than at the
        end-of-text token, or is not open_clip's own (Hugging Face towers): padding would change its output.
        """
        model = clip.model
        tower = getattr(model, "text", model)
        needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
        pool = getattr(tower, "text_pool_type", getattr(tower, "pool_type", None))
        mask = getattr(tower, "attn_mask", None)
        if (
            not all(hasattr(tower, name) for name in needed)
            or getattr(tower, "cls_emb", None) is not None
            or mask is None
            or pool not in _POOLS
        ):
            raise ModelSpecError(
                f"model {clip.spec.name!r}: its text tower is not a causal open_clip text transformer pooled at "
                "the end-of-text token; embed-text supports CLIP-style text towers"
            )
        eos = getattr(tower, "text_eos_id", getattr(tower, "eos_id", None))
        return cls(
            tower.token_embedding,
            tower.positional_embedding,
            tower.transformer,
            mask,
            tower.ln_final,
            tower.text_projection,
            pool,
            eos,
        )

    def lengths(self, tokens: torch.Tensor) -> np.ndarray:
        """Positions each tokenised caption needs: up to and including its end-of-text token."""
        if self.pool_type == "eos" and self.eos_id is not None:
            end = (tokens == self.eos_id).int().argmax(dim=-1)
        else:  # CLIP's end-of-text token has the highest id of the vocabulary
            end = tokens.argmax(dim=-1)
        return (end + 1).cpu().numpy()

    def width(self, mode: str) -> int:
        """Width of the ``mode`` embedding."""
        if mode == "pooled":
            return int(self.ln_final.normalized_shape[0])
        if isinstance(self.text_projection, torch.nn.Linear):
            return int(self.text_projection.out_features)
        return int(self.text_projection.shape[1])

    def forward(self, tokens: torch.Tensor, mode: str) -> torch.Tensor:
        """Pooled (or projected and normalised) features of ``tokens`` (B x L, any L up to the context)."""
        from open_clip.transformer import text_global_pool

        width = tokens.shape[1]
        cast = self.transformer.get_cast_dtype()
        x = self.token_embedding(tokens).to(cast) + self.positional_embedding[:width].to(cast)
        x = self.transformer(x, attn_mask=self.attn_mask[:width, :width])
        x = self.ln_final(x)
        pooled = text_global_pool(x, tokens, self.pool_type, eos_token_id=self.eos_id)
        if mode == "pooled":
            return pooled
        if isinstance(self.text_projection, torch.nn.Linear):
            projected = self.text_projection(pooled)
        else:
            projected = pooled @ self.text_projection
        return torch.nn.functional.normalize(projected.float(), dim=-1)


def encode_captions(
    clip: ClipModel,
    captions: Sequence[str | None],
    *,
    mode: str = "pooled",
    batch_size: int = TEXT_BATCH,
    padding: str = "dynamic",
    batches: InferenceBatches | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """float32 embeddings (n x d, zero rows for null captions) and the mask of non-null captions.

    ``padding="dynamic"`` groups captions by token count and pads each batch to its longest;
    ``"full"`` pads every caption to the model's context (the reference it is compared with).
    """
    if mode not in TEXT_MODES:
        raise ValueError(f"mode must be one of {TEXT_MODES}, got {mode!r}")
    tower = TextTower.of(clip)
    valid = np.array([c is not None for c in captions], dtype=bool)
    texts = [c for c in captions if c is not None]
    if not texts:
        return np.zeros((len(captions), tower.width(mode)), np.float32), valid
    tokens = clip.tokenizer(texts)
    if padding == "dynamic":
        lengths = tower.lengths(tokens)
        order = np.argsort(lengths, kind="stable")
    else:
        lengths = np.full(len(texts), tokens.shape[1])
        order = np.arange(len(texts))
    batches = batches or InferenceBatches(batch_size, "captions")

    def forward(start: int, stop: int) -> np.ndarray:
        picked = order[start:stop]
        longest = int(lengths[picked].max())
        batch = tokens[torch.from_numpy(picked), :longest].to(clip.device)
        with torch.inference_mode():
            return tower.forward(batch, mode).float().cpu().numpy()

    encoded = np.concatenate(batches.run(len(texts), forward))
    ordered = np.empty_like(encoded)
    ordered[order] = encoded
    out = np.zeros((len(captions), ordered.shape[1]), np.float32)
    out[valid] = ordered
    return out, valid


def embedding_array(matrix: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Arrow ``list<float>`` of the rows of ``matrix``, null where ``valid`` is False."""
    n, d = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    values = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).ravel())
    return pa.ListArray.from_arrays(offsets, values, mask=pa.array(~valid))


def _embed_windows(
    batches: Iterator[pa.RecordBatch],
    *,
    column: str,
    spec: ModelSpec,
    mode: str,
    batch_size: int,
    output: str,
    window: int,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: the partition's batches with ``output`` appended, grouped by length in windows."""
    clip = load_model(spec)
    inference = InferenceBatches(batch_size, "captions")
    buffered: list[pa.RecordBatch] = []
    rows = 0

    def flush() -> Iterator[pa.RecordBatch]:
        started = time.perf_counter()
        captions = pa.concat_arrays([b.column(column) for b in buffered]).to_pylist()
        matrix, valid = encode_captions(clip, captions, mode=mode, batches=inference)
        seconds = time.perf_counter() - started
        log.info(
            "embed-text: %d captions (%d null) in %.2f s, %.0f captions/s on %s",
            len(captions),
            int((~valid).sum()),
            seconds,
            len(captions) / max(seconds, 1e-9),
            clip.device,
        )
        at = 0
        for batch in buffered:
            part = slice(at, at + batch.num_rows)
            array = embedding_array(matrix[part], valid[part])
            yield pa.RecordBatch.from_arrays([*batch.columns, array], names=[*batch.schema.names, output])
            at += batch.num_rows

    for batch in batches:
        if batch.num_rows == 0:
            continue
        buffered.append(batch)
        rows += batch.num_rows
        if rows >= window:
            yield from flush()
            buffered, rows = [], 0
    if buffered:
        yield from flush()


def embed_text_frame(
    df: Any,
    column: str,
    spec: ModelSpec | str,
    *,
    mode: str = "pooled",
    batch_size: int = TEXT_BATCH,
    output: str = "embedding",
    window: int = TEXT_WINDOW,
) -> Any:
    """``df`` with an ``output`` column (``array<float>``) of the CLIP text embedding of ``column``.

    Computed on the executors, where the model comes from the process-wide cache (:func:`load_model`:
    one load per Python process, shared by every task and job). ``mode`` is ``pooled`` or ``projected``
    (see the module docstring); a null caption gives a null embedding. Captions are grouped by token
    count within windows of ``window`` rows of a partition; output rows keep the input order.

    Raises :class:`~laion_spark.errors.InputError` (before any work) for a missing or non-string
    ``column``, an ``output`` that already exists, a bad ``mode`` or ``batch_size``, or a bad ``spec``.
    """
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    from ..errors import InputError
    from ..lake.columns import require_columns

    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    if mode not in TEXT_MODES:
        raise InputError(f"mode {mode!r}: expected one of {', '.join(TEXT_MODES)}")
    if batch_size < 1 or window < 1:
        raise InputError(f"batch size {batch_size} and window {window} must be at least 1")
    require_columns(df.schema, {column: "string"}, "the caption frame")
    if output in df.columns:
        raise InputError(f"output column {output!r} already exists in the frame")
    schema = StructType([*df.schema.fields, StructField(output, ArrayType(FloatType(), False), True)])
    body = partial(
        _embed_windows, column=column, spec=spec, mode=mode, batch_size=batch_size, output=output, window=window
    )
    return df.mapInArrow(body, schema)
