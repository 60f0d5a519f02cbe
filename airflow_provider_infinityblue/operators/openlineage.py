"""The OpenLineage facets of the generate and download operators.

Imported only by their ``get_openlineage_facets_on_complete`` methods, which the OpenLineage provider
calls when it is installed: the provider works without it, and DAG files never load this module.

What goes into an event is what identifies data, never what grants access to it: URLs lose their
user info, query string and fragment (signed URLs carry tokens there), and an image sent as a data
URI is no dataset at all (its bytes stay out of every event).
"""

from __future__ import annotations

from importlib.metadata import metadata
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import attrs
from airflow.providers.common.compat.openlineage.facet import (
    InputDataset,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
    RunFacet,
)
from airflow.providers.openlineage.extractors import OperatorLineage

from airflow_provider_infinityblue import __version__
from airflow_provider_infinityblue.exceptions import InfinityBlueValidationError

if TYPE_CHECKING:
    from airflow_provider_infinityblue.models import GenerationRequest
    from airflow_provider_infinityblue.operators.download import InfinityBlueDownloadVideoOperator
    from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoOperator


def _repository_url() -> str:
    """The package's ``Repository`` Project-URL (pyproject.toml): one home for the link and the facets."""
    for entry in metadata("airflow-provider-infinityblue").get_all("Project-URL") or []:
        name, _, url = entry.partition(",")
        if name.strip() == "Repository":
            return url.strip()
    raise LookupError("airflow-provider-infinityblue's metadata names no Repository URL")


PROJECT_URL = _repository_url()
PRODUCER = f"{PROJECT_URL}/tree/{__version__}"
"""The ``_producer`` of our facets: this provider, at this version."""
GENERATION_RUN_FACET = "infinityblueGeneration"
"""The name of :class:`InfinityBlueGenerationRunFacet` among a run's facets."""


@attrs.define
class InfinityBlueGenerationRunFacet(RunFacet):
    """How an InfinityBlue video was generated: the model, the remote generation id and the video's shape.

    The numbers are those requested (None when not given): the API decides what a model makes of them.
    Field names are camelCase, as OpenLineage facets name theirs.
    """

    model: str | None = attrs.field(default=None)
    generationId: str | None = attrs.field(default=None)
    duration: float | None = attrs.field(default=None)
    width: int | None = attrs.field(default=None)
    height: int | None = attrs.field(default=None)
    fps: int | None = attrs.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{PROJECT_URL}#/$defs/InfinityBlueGenerationRunFacet"


def generation_lineage(operator: InfinityBlueGenerateVideoOperator) -> OperatorLineage:
    """The image a generation started from (a URL or a local file), the video it made, and how."""
    inputs, outputs = [], []
    image = operator.image if isinstance(operator.image, str) else None
    if image and not image.lstrip().lower().startswith("data:"):
        inputs.append(InputDataset(*dataset_name(image)))
    if operator.video_url:
        outputs.append(OutputDataset(*dataset_name(operator.video_url)))
    model = operator.resolved_model or (operator.model if isinstance(operator.model, str) else None) or None
    request = _requested(operator, model)
    facet = InfinityBlueGenerationRunFacet(
        model=model,
        generationId=operator.generation_id,
        duration=request.duration if request else None,
        width=request.width if request else None,
        height=request.height if request else None,
        fps=request.fps if request else None,
        producer=PRODUCER,
    )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets={GENERATION_RUN_FACET: facet})


def download_lineage(operator: InfinityBlueDownloadVideoOperator) -> OperatorLineage:
    """The video's URL as the input, its destination as the output (with its size once saved)."""
    inputs, outputs = [], []
    if isinstance(operator.url, str) and operator.url:
        inputs.append(InputDataset(*dataset_name(operator.url)))
    saved = operator.saved_video
    if saved is not None:
        statistics = OutputStatisticsOutputDatasetFacet(size=saved.size_bytes)
        outputs.append(OutputDataset(*dataset_name(saved.destination), outputFacets={"outputStatistics": statistics}))
    elif isinstance(operator.destination, str) and operator.destination:
        outputs.append(OutputDataset(*dataset_name(operator.destination)))
    return OperatorLineage(inputs=inputs, outputs=outputs)


def dataset_name(location: str) -> tuple[str, str]:
    """The OpenLineage ``(namespace, name)`` of a URL or a local path.

    A local path or ``file://`` URL is in the ``file`` namespace, named by its absolute path; an
    http(s) URL's namespace is its scheme, host and port, an object storage URL's its scheme and
    bucket. User info (an Airflow connection id, a password), the query string and the fragment
    are left out.

    >>> dataset_name("https://user:pw@CDN.example:8443/v/1.mp4?signature=secret#t=3")
    ('https://cdn.example:8443', '/v/1.mp4')
    >>> dataset_name("s3://aws_videos@bucket/videos/1.mp4"), dataset_name("/data/videos/1.mp4")
    (('s3://bucket', 'videos/1.mp4'), ('file', '/data/videos/1.mp4'))
    """
    if "://" not in location:
        return "file", str(Path(location).expanduser().absolute())
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return "file", parts.path
    authority = parts.netloc.rpartition("@")[2]
    if scheme in ("http", "https"):
        return f"{scheme}://{authority.lower()}", parts.path or "/"
    return f"{scheme}://{authority}", parts.path.lstrip("/")


def _requested(operator: InfinityBlueGenerateVideoOperator, model: str | None) -> GenerationRequest | None:
    """The request the operator's fields make, for its numbers; None when they are invalid (a failed task)."""
    try:
        return operator._generation_request(model or "unknown")
    except InfinityBlueValidationError:
        return None
