"""Latency summary (p50, p95, mean, max) of answer times in milliseconds."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """\
Summarises per-answer latencies in milliseconds: median (p50), 95th percentile (p95), mean and max.
Percentiles use numpy's default "linear" method: the value at rank (n - 1) * q / 100 of the sorted sample,
interpolated between its two neighbours. Only predictions are given (no references).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of float): latencies in milliseconds, at least one.
Returns:
    p50, p95, mean, max (float, ms).
Raises:
    ValueError: when no latency is given.
Example:
    >>> latency = evaluate.load("training/metrics/latency")
    >>> latency.compute(predictions=[10, 20, 30, 40, 50])
    {'p50': 30.0, 'p95': 48.0, 'mean': 30.0, 'max': 50.0}
"""


class Latency(evaluate.Metric):
    """p50 / p95 / mean / max of latencies."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64")}),
        )

    def _compute(self, predictions: list[float]) -> dict:
        if len(predictions) == 0:
            raise ValueError("latency: no latencies given; pass at least one value in milliseconds")
        values = np.asarray(predictions, dtype=float)
        p50, p95 = np.percentile(values, [50, 95], method="linear")
        return {"p50": float(p50), "p95": float(p95), "mean": float(values.mean()), "max": float(values.max())}
