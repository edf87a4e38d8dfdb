"""Reading the service's /metrics text with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def metric_samples(text: str, name: str) -> list[Sample]:
    """Every sample called `name` (e.g. `petseg_http_requests_total`, `petseg_batch_size_count`)."""
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` that carry all of `labels` (0 when there are none)."""
    return sum(
        sample.value
        for sample in metric_samples(text, name)
        if all(sample.labels.get(key) == wanted for key, wanted in labels.items())
    )
