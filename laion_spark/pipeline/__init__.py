"""The pipeline: its configuration (``conf/pipeline.yaml``), its stages, the runner that resumes, and the demo.

Reads and writes what its stages read and write (see each stage package), and
records every completed stage in the lake table ``pipeline_stages``.
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".config": ["PipelineConfig", "load_pipeline_config", "parse_pipeline_config"],
        ".demo": ["run_demo"],
        ".params": ["PIPELINE_STAGES"],
        ".runner": ["PipelineResult", "describe", "run_pipeline"],
        ".spec": ["PipelineSpec"],
    },
)
