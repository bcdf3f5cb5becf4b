"""One module per ``laion-spark`` command group; each exposes ``register(app)``."""

from . import demo, doctor, join_tags, kv, sample, score_embeddings, subsets

COMMAND_MODULES = [sample, join_tags, score_embeddings, subsets, kv, demo, doctor]
