"""Which Delta table features each engine's writer implements (no engine imported here).

A Delta table's protocol names the features every writer must implement (``writerFeatures`` from writer version
7; fixed sets for the legacy versions 2-6). The session factory gives each :class:`~laion_spark.engine.LakeSession`
the set of its engine, and :func:`laion_spark.lake.tables.write_table` refuses, in one line and before anything is
written, a table that needs a feature outside it.

Sail's set was measured with pysail 0.7.2 on tables delta-spark 4.0.1 created with each feature (appends,
``replaceWhere`` and overwrites, then read back by delta-spark: the feature's rules kept); delta-spark's set is
checked against the features its jar registers by ``tests/lake/test_two_engines.py``.
"""

from __future__ import annotations

#: Writer features whose rules pysail 0.7.2 keeps (measured: CHECK constraints and generated-column values
#: enforced, identity values assigned with the high-water mark, deletion vectors and column mapping honoured on
#: read and replaceWhere, append-only refusing an overwrite, in-commit timestamps written). Sail refuses
#: ``changeDataFeed`` and ``rowTracking``/``domainMetadata`` itself ("Unsupported table features required").
SAIL_WRITER_FEATURES = frozenset(
    {
        "appendOnly",
        "invariants",
        "checkConstraints",
        "generatedColumns",
        "identityColumns",
        "columnMapping",
        "deletionVectors",
        "inCommitTimestamp",
        "timestampNtz",
        "typeWidening",
        "variantType",
    }
)

#: Writer features delta-spark 4.0.1 implements (``TableFeature.allSupportedFeaturesMap`` of its jar; the
#: pinned coordinate, ``jars.properties``).
DELTA_SPARK_WRITER_FEATURES = frozenset(
    {
        "allowColumnDefaults",
        "appendOnly",
        "catalogManaged",
        "changeDataFeed",
        "checkConstraints",
        "checkpointProtection",
        "clustering",
        "columnMapping",
        "coordinatedCommits-preview",
        "deletionVectors",
        "domainMetadata",
        "generatedColumns",
        "icebergCompatV1",
        "icebergCompatV2",
        "identityColumns",
        "inCommitTimestamp",
        "invariants",
        "rowTracking",
        "timestampNtz",
        "typeWidening",
        "typeWidening-preview",
        "v2Checkpoint",
        "vacuumProtocolCheck",
        "variantShredding-preview",
        "variantType",
        "variantType-preview",
    }
)

#: The features a legacy writer version (2-6) implies; from version 7 on, the protocol lists them.
LEGACY_WRITER_FEATURES = {
    1: frozenset(),
    2: frozenset({"appendOnly", "invariants"}),
    3: frozenset({"appendOnly", "invariants", "checkConstraints"}),
    4: frozenset({"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns"}),
    5: frozenset(
        {"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns", "columnMapping"}
    ),
    6: frozenset(
        {
            "appendOnly",
            "invariants",
            "checkConstraints",
            "changeDataFeed",
            "generatedColumns",
            "columnMapping",
            "identityColumns",
        }
    ),
}
