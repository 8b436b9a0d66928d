"""A small learned second opinion on what a customer message is: a question to answer, a hand-off
(a human asked for, a cancellation, a complaint, a money dispute, a repeated failure, anger) or
something outside the service.

The rules of `rag.nlu` explain each decision; they miss phrasings nobody wrote a rule for. This
model reads hashed character and word n-grams of the folded message (robust to typos and SMS
style) through a multinomial logistic regression trained by `python -m training.intent` on
`datasets/intent/` and the KB's own phrasings. Serving needs only numpy: the weights of the
n-grams seen in training are stored in `datasets/intent/model.npz` with the fingerprint of the data
they were trained on.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.nlu import Analysis, firm_cancellation, has_subject, strip_noise, topic_text
from rag.text import fold

if TYPE_CHECKING:
    from settings import RagConfig

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "datasets" / "intent" / "model.npz"
BUCKETS = 1 << 20
FEATURES_VERSION = "1"  # bump when `features` changes: the stored model is then refused
QUESTION, OUT_OF_SCOPE = "question", "oos"
# Hand-off labels and the escalation reason each one stores on the ticket (the rules' wording).
HANDOFF_REASONS = {
    "human": "demande explicite d'un conseiller",
    "cancel": "demande de résiliation",
    "complaint": "réclamation formelle",
    "money": "remboursement ou litige financier",
    "repeated": "problème non résolu après plusieurs tentatives",
    "anger": "mécontentement important",
}
LABELS = (QUESTION, OUT_OF_SCOPE, *HANDOFF_REASONS)
_WORD = re.compile(r"[a-z0-9]+|[!?€]")
MIN_WORDS = 3  # shorter messages are left to the rules


def _bucket(gram: str) -> int:
    return zlib.crc32(gram.encode()) % BUCKETS


@lru_cache(maxsize=65536)
def _word_buckets(word: str) -> tuple[int, ...]:
    """Buckets of a word and of its character 2-5-grams (with word boundaries); words recur, so cached."""
    padded = f" {word} "
    grams = [f"c:{padded[i : i + n]}" for n in range(2, 6) for i in range(max(1, len(padded) - n + 1))]
    return (_bucket(f"w:{word}"), *map(_bucket, grams))


def features(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Hashed n-grams of the folded message: bucket ids (sorted, unique) and L2-normalised weights.

    Character 2-5-grams inside each word (with word boundaries), words and word pairs, plus two
    shape features (shouting, repeated "!")."""
    folded = fold(text).replace("’", "'")
    words = _WORD.findall(folded)
    buckets = [b for word in words for b in _word_buckets(word)]
    buckets += [_bucket(f"b:{a} {b}") for a, b in itertools.pairwise(words)]
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.6:
        buckets.append(_bucket("s:caps"))
    if "!!" in text:
        buckets.append(_bucket("s:bangs"))
    if not buckets:
        buckets = [_bucket("s:empty")]
    ids, counts = np.unique(np.array(buckets, dtype=np.int64), return_counts=True)
    values = np.sqrt(counts.astype(np.float32))  # damp repeated n-grams
    return ids, values / np.linalg.norm(values)


@dataclass(frozen=True)
class Prediction:
    """Probabilities of every label for one message."""

    probs: dict[str, float]

    @property
    def label(self) -> str:
        """The most likely label."""
        return max(self.probs, key=self.probs.get)

    @property
    def handoff(self) -> float:
        """Probability that the message asks for a hand-off, whatever the kind."""
        return sum(self.probs[label] for label in HANDOFF_REASONS)

    def handoff_reason(self) -> str:
        """The escalation reason of the most likely hand-off label."""
        label = max(HANDOFF_REASONS, key=self.probs.get)
        return HANDOFF_REASONS[label]


class IntentModel:
    """The trained weights: only the rows of buckets seen in training are kept (sorted ids)."""

    def __init__(self, rows: np.ndarray, weights: np.ndarray, bias: np.ndarray, labels: tuple[str, ...],
                 meta: dict) -> None:  # fmt: skip
        self.rows, self.weights, self.bias, self.labels, self.meta = rows, weights, bias, labels, meta

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> IntentModel:
        """Read a model written by `save`; refuses one made with other features."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("features_version") != FEATURES_VERSION or meta.get("buckets") != BUCKETS:
                raise ValueError(f"{path} was trained with other features; run python -m training.intent")
            return cls(data["rows"], data["weights"], data["bias"], tuple(meta["labels"]), meta)

    def save(self, path: Path) -> Path:
        """Write the model (atomic rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as fh:
            np.savez_compressed(fh, rows=self.rows, weights=self.weights.astype(np.float32),
                                bias=self.bias.astype(np.float32), meta=np.array(json.dumps(self.meta)))  # fmt: skip
        tmp.replace(path)
        return path

    def predict(self, text: str) -> Prediction:
        """Label probabilities of one message (about 0.1 ms)."""
        ids, values = features(text)
        at = np.minimum(np.searchsorted(self.rows, ids), len(self.rows) - 1)
        known = self.rows[at] == ids
        logits = self.bias + values[known] @ self.weights[at[known]]
        logits = np.exp(logits - logits.max())
        probs = logits / logits.sum()
        return Prediction({label: float(p) for label, p in zip(self.labels, probs, strict=True)})


_cache: dict[Path, IntentModel | None] = {}
_cache_lock = threading.Lock()


def labelled_messages(data_dir: Path) -> list[tuple[str, str]]:
    """(text, label) pairs of the labelled message files (`*.jsonl`) under data_dir, in file order."""
    examples: list[tuple[str, str]] = []
    for path in sorted(Path(data_dir).glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("label") not in LABELS or not str(row.get("text", "")).strip():
                raise ValueError(f"{path.name}:{number}: label must be one of {LABELS} with a non-empty text")
            examples.append((row["text"].strip(), row["label"]))
    return examples


def shipped_model(path: Path = DEFAULT_PATH) -> IntentModel | None:
    """The shipped model (loaded once), or None when it is missing or outdated."""
    path = Path(path)
    with _cache_lock:
        if path not in _cache:
            try:
                _cache[path] = IntentModel.load(path)
            except (OSError, ValueError, KeyError):
                _cache[path] = None
        return _cache[path]


def second_opinion(analysis: Analysis, text: str, prediction: Prediction, config: RagConfig) -> Analysis:
    """The rules' analysis corrected where the classifier is confident (thresholds in RagConfig).

    - the rules found no hand-off and the model is sure of one: it escalates, with the reason of the
      most likely kind ("passe moi un humain", an angry message in words no rule lists);
    - the rules found one and the model is sure it is a plain question: the reasons are dropped and the
      request words are searched too ("pour déposer une réclamation, quel menu ?"), except a request for
      a human, which the rules already tell from a question about humans ("si un jour j'ai besoin d'un
      humain...") and which an unknown word ("qqn", "causer") must not turn into a question, and a
      cancellation in a firm form ("je veux résilier, c'est effectif quand ?"), a request even in a question;
    - the out-of-scope probability is kept for the scope decision made after retrieval.
    """
    if analysis.small_talk or len(_WORD.findall(fold(text))) < MIN_WORDS:
        return analysis  # "merci !", "ok", two words: too little for the n-grams to be trusted
    reasons = list(analysis.escalation_reasons)
    if not reasons and prediction.handoff >= config.intent_handoff:
        reasons = [prediction.handoff_reason()]
    folded = fold(text).replace("’", "'")
    if reasons and prediction.probs[QUESTION] >= config.intent_question and HANDOFF_REASONS["human"] not in reasons \
            and not firm_cancellation(folded):
        reasons = []
    requests = any(r in reasons for r in (HANDOFF_REASONS["human"], HANDOFF_REASONS["complaint"]))
    return dataclasses.replace(
        analysis,
        escalation_reasons=reasons,
        topic=topic_text(folded, requests) if reasons != analysis.escalation_reasons else analysis.topic,
        bare_request=HANDOFF_REASONS["human"] in reasons and not has_subject(strip_noise(folded)),
        extra_topic=analysis.extra_topic if reasons else None,
        out_of_scope_probability=prediction.probs[OUT_OF_SCOPE],
        model_label=prediction.label,
    )
