"""The pipeline: its configuration (``conf/pipeline.yaml``) and the demo that runs every stage on sample data.

Reads and writes what its stages read and write (see each stage package).
"""

from .._lazy import lazy_exports

__all__ = [
    "PipelineConfig",
    "PipelineConfigError",
    "SafetyConfig",
    "SubsetSpec",
    "default_config_path",
    "load_pipeline_config",
    "parse_pipeline_config",
    "run_demo",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".config": [
            "PipelineConfig",
            "PipelineConfigError",
            "SafetyConfig",
            "SubsetSpec",
            "default_config_path",
            "load_pipeline_config",
            "parse_pipeline_config",
        ],
        ".demo": ["run_demo"],
    },
    __all__,
)
