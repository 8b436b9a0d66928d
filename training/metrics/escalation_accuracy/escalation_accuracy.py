"""Escalation accuracy: did the assistant hand over to a human exactly when it should have?"""

import datasets
import evaluate

_DESCRIPTION = """\
Compares predicted escalation decisions (True = hand the conversation over to a human agent) with the expected
ones. Escalation is the positive class: precision is the share of predicted escalations that were expected,
recall the share of expected escalations that were made. A ratio whose denominator is zero is None rather than
an error or a made-up 0: precision is None when nothing was escalated, recall when nothing should have been,
f1 when either is None (f1 is 0.0 when both are 0.0).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of bool): escalation decided by the assistant.
    references (list of bool): escalation expected.
Returns:
    accuracy, precision, recall, f1 (float 0-1 or None), as described above; accuracy is None for no items.
Example:
    >>> esc = evaluate.load("training/metrics/escalation_accuracy")
    >>> esc.compute(predictions=[True, False], references=[True, True])
    {'accuracy': 0.5, 'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666}
"""


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


class EscalationAccuracy(evaluate.Metric):
    """Accuracy, precision, recall and F1 of escalation decisions."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("bool"), "references": datasets.Value("bool")}),
        )

    def _compute(self, predictions: list[bool], references: list[bool]) -> dict:
        pairs = list(zip(predictions, references, strict=True))
        tp = sum(p and r for p, r in pairs)
        precision = _ratio(tp, sum(p for p, _ in pairs))
        recall = _ratio(tp, sum(r for _, r in pairs))
        f1 = None
        if precision is not None and recall is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        accuracy = _ratio(sum(p == r for p, r in pairs), len(pairs))
        return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}
