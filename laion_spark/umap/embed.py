"""Text embeddings of the sample's captions: what the UMAP job lays out (CLIP's ``embed-text``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

from ..clip.params import TEXT_MODES
from .errors import UmapError
from .params import EMBED_BATCH, Umap
from .projection import list_column


class TextEmbedder(Protocol):
    """Adds an ``array<float>`` embedding column of a caption column to a frame, on the executors."""

    name: str

    def width(self) -> int:
        """Values per embedding."""
        ...

    def embed(self, frame: DataFrame, column: str, output: str) -> DataFrame:
        """``frame`` with ``output``, the embedding of the string column ``column``."""
        ...


@dataclass(frozen=True)
class ClipTextEmbedder:
    """CLIP text embeddings through :func:`laion_spark.clip.embed_text_frame` (pooled, as published, by default)."""

    spec: object
    mode: str = Umap.mode
    batch_size: int = EMBED_BATCH

    @classmethod
    def of(cls, spec: object, mode: str = Umap.mode, batch_size: int = EMBED_BATCH) -> ClipTextEmbedder:
        """Parse ``spec`` (a ``ModelSpec`` or its text) and check ``mode``; :class:`~laion_spark.errors.InputError`."""
        from ..clip import ModelSpec

        if mode not in TEXT_MODES:
            raise UmapError(f"--mode {mode!r}: choose one of {', '.join(TEXT_MODES)}")
        return cls(spec if isinstance(spec, ModelSpec) else ModelSpec.parse(str(spec)), mode, batch_size)

    @property
    def name(self) -> str:
        """``<architecture>:<weights> <mode>``."""
        return f"{self.spec.name} {self.mode}"

    def width(self) -> int:
        """The joint embedding's width (``projected``) or the text transformer's (``pooled``), from the config."""
        if self.mode == "projected":
            return self.spec.embed_dim()
        import open_clip
        from open_clip.model import CLIPTextCfg

        text_cfg = open_clip.get_model_config(self.spec.architecture).get("text_cfg", {})
        return int(text_cfg.get("width", CLIPTextCfg().width))

    def embed(self, frame: DataFrame, column: str, output: str) -> DataFrame:
        """``frame`` with ``output``: the CLIP text embedding of ``column`` (null for a null caption)."""
        from ..clip import embed_text_frame

        return embed_text_frame(frame, column, self.spec, mode=self.mode, batch_size=self.batch_size, output=output)


@dataclass(frozen=True)
class FunctionEmbedder:
    """Any ``captions -> (n, dims) float32 matrix`` function as a text embedder, run batch by batch in the tasks.

    For embeddings other than CLIP's (another text model, precomputed vectors
    looked up by caption); ``function`` travels inside the task closure and sees
    every caption (``None`` for a null one).
    """

    function: Callable[[Sequence[str | None]], np.ndarray]
    dims: int
    name: str = "function"

    def width(self) -> int:
        """``dims``."""
        return self.dims

    def embed(self, frame: DataFrame, column: str, output: str) -> DataFrame:
        """``frame`` with ``output``: ``function`` of the captions of ``column``, one Arrow batch at a time."""
        function, dims, name = self.function, self.dims, self.name
        schema = StructType([*frame.schema.fields, StructField(output, ArrayType(FloatType()), True)])

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                matrix = np.asarray(function(batch.column(column).to_pylist()), dtype=np.float32)
                if matrix.shape != (batch.num_rows, dims):
                    raise UmapError(f"embedder {name}: {matrix.shape} for {batch.num_rows} captions of width {dims}")
                embedded = list_column(matrix, np.ones(batch.num_rows, bool))
                yield pa.RecordBatch.from_arrays([*batch.columns, embedded], names=[*batch.schema.names, output])

        return frame.mapInArrow(run, schema)
