"""Fine-tune the retriever: a LoRA adapter of the embedding model trained on the KB's own phrasings.

    python -m training.embed --config configs/embed/default.yaml [--out DIR] [--promote]

Pairs: each FAQ phrasing with its entry's answer, and with the entry's other phrasings; in-batch
negatives (MultipleNegativesRankingLoss) teach the encoder that phrasings of one entry meet and
those of different entries part. Only a LoRA adapter is trained (about 2.7 MB), so it ships with the
code and is merged into the packaged MiniLM before the ONNX export (`rag.onnx_export`).

With `holdout_per_entry` > 0, that many phrasings of each entry with three or more are kept out of
training, and dense retrieval of them (hit@1, hit@3, MRR at entry level, against the answers and the
other phrasings) is reported for the base model and the adapted one. `--promote` copies the adapter
to the path the app reads (`MOBILIA_RAG__EMBEDDING_ADAPTER`) when it retrieves at least as well as the
base; the next start rebuilds the index with it (the index fingerprint covers the adapter).
Runs on CPU (about 5 minutes for the shipped KB on two cores); `device: cuda` uses a GPU when present.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml

from training.config import ConfigError, resolve_path

log = logging.getLogger(__name__)


@dataclass
class EmbedTrainConfig:
    """A retriever fine-tuning run (YAML section `embed`)."""

    base_model: str = "packaged"
    kb_dir: str = "datasets/raw"
    out: str = "runs/embed/default"
    epochs: int = 2
    max_steps: int = -1  # > 0: stop after that many optimiser steps (smoke tests)
    learning_rate: float = 3e-4
    batch_size: int = 32
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    paraphrase_pairs: int = 2  # pairs of each phrasing with the next ones of its entry
    answer_chars: int = 600  # answer text paired with each phrasing (title + start of the answer)
    holdout_per_entry: int = 1  # phrasings kept out per entry (with >= 3) to measure retrieval; 0: train on all
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Refuse impossible values with French messages (one per problem)."""
        errors = []
        if self.epochs < 1 and self.max_steps <= 0:
            errors.append("epochs doit être ≥ 1 (ou max_steps > 0).")
        if not 0 < self.learning_rate < 1:
            errors.append("learning_rate doit être compris entre 0 et 1.")
        if self.batch_size < 2:
            errors.append("batch_size doit être ≥ 2 (les autres exemples du lot servent de négatifs).")
        if self.lora_r < 1 or self.lora_alpha < 1:
            errors.append("lora_r et lora_alpha doivent être ≥ 1.")
        if not 0 <= self.lora_dropout < 1:
            errors.append("lora_dropout doit être compris entre 0 et 1.")
        if self.holdout_per_entry < 0:
            errors.append("holdout_per_entry doit être ≥ 0.")
        if not resolve_path(self.kb_dir).is_dir():
            errors.append(f"kb_dir introuvable : {self.kb_dir}")
        if errors:
            raise ConfigError(errors)

    @classmethod
    def from_yaml(cls, path: Path, overrides: dict | None = None) -> EmbedTrainConfig:
        """Read the `embed` section of a YAML file (unknown keys refused), then apply overrides."""
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        section = {**(data.get("embed") or {}), **(overrides or {})}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError([f"clé inconnue dans la section embed : {k}" for k in unknown])
        config = cls(**section)
        config.validate()
        return config


def split_pairs(config: EmbedTrainConfig) -> tuple[list[tuple[str, str]], list[tuple[str, int]], list[str], list[int]]:
    """Training pairs, held-out (phrasing, entry) queries, and the corpus (texts, entry of each) they search."""
    from rag.sources import load_kb

    rng = random.Random(config.seed)
    entries = load_kb(resolve_path(config.kb_dir))
    pairs: list[tuple[str, str]] = []
    held: list[tuple[str, int]] = []
    corpus: list[str] = []
    owner: list[int] = []
    for index, entry in enumerate(entries):
        answer = f"{entry.title}. {entry.answer[: config.answer_chars]}"
        corpus.append(answer)
        owner.append(index)
        phrasings = [q.strip() for q in entry.questions if q.strip()]
        if config.holdout_per_entry and len(phrasings) >= 3:
            kept = rng.sample(range(len(phrasings)), config.holdout_per_entry)
            held += [(phrasings[i], index) for i in kept]
            phrasings = [q for i, q in enumerate(phrasings) if i not in kept]
        for i, phrasing in enumerate(phrasings):
            corpus.append(phrasing)
            owner.append(index)
            pairs.append((phrasing, answer))
            pairs += [(phrasing, other) for other in phrasings[i + 1 : i + 1 + config.paraphrase_pairs]]
    return pairs, held, corpus, owner


def retrieval_metrics(model, held: list[tuple[str, int]], corpus: list[str], owner: list[int]) -> dict:
    """Entry-level hit@1, hit@3 and MRR of dense retrieval of the held-out phrasings."""
    if not held:
        return {}
    queries = model.encode(
        [q for q, _ in held], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    docs = model.encode(corpus, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    owner_arr = np.array(owner)
    ranks = []
    for vector, (_, entry) in zip(queries, held, strict=True):
        order = owner_arr[np.argsort(-(docs @ vector), kind="stable")]
        ranked = list(dict.fromkeys(order.tolist()))  # best score per entry
        ranks.append(ranked.index(entry) + 1)
    ranks_arr = np.array(ranks)
    return {"queries": len(held), "hit@1": round(float((ranks_arr == 1).mean()), 4),
            "hit@3": round(float((ranks_arr <= 3).mean()), 4), "mrr": round(float((1 / ranks_arr).mean()), 4)}  # fmt: skip


def train(config: EmbedTrainConfig) -> dict:
    """Train the adapter into `config.out`/adapter, write report.json there and return the report."""
    import torch
    from peft import LoraConfig, TaskType
    from sentence_transformers import InputExample, SentenceTransformer, losses
    from torch.utils.data import DataLoader

    from rag.embeddings import resolve_model_path

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    out = resolve_path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs, held, corpus, owner = split_pairs(config)
    model = SentenceTransformer(resolve_model_path(config.base_model), device=config.device)
    before = retrieval_metrics(model, held, corpus, owner)
    model.add_adapter(LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=config.lora_r, lora_alpha=config.lora_alpha,
                                 lora_dropout=config.lora_dropout, target_modules=list(config.target_modules)))  # fmt: skip
    loader = DataLoader([InputExample(texts=list(p)) for p in pairs], shuffle=True, batch_size=config.batch_size)
    started = time.perf_counter()
    model.fit(train_objectives=[(loader, losses.MultipleNegativesRankingLoss(model))], epochs=max(1, config.epochs),
              steps_per_epoch=config.max_steps if config.max_steps > 0 else None, warmup_steps=10,
              optimizer_params={"lr": config.learning_rate}, show_progress_bar=False)  # fmt: skip
    seconds = round(time.perf_counter() - started, 1)
    after = retrieval_metrics(model, held, corpus, owner)
    adapter = out / "adapter"
    model[0].auto_model.save_pretrained(str(adapter))
    report = {"config": asdict(config), "pairs": len(pairs), "train_seconds": seconds,
              "retrieval_before": before, "retrieval_after": after, "adapter": str(adapter)}  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return report


def promote(report: dict, target: Path) -> bool:
    """Copy the run's adapter to `target` (atomic rename) unless it retrieves worse than the base model."""
    before, after = report.get("retrieval_before") or {}, report.get("retrieval_after") or {}
    if before and after and after["mrr"] < before["mrr"]:
        log.warning("Adapter not promoted: MRR %.3f < %.3f without it", after["mrr"], before["mrr"])
        return False
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(report["adapter"], tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return True


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m training.embed`."""
    parser = argparse.ArgumentParser(prog="python -m training.embed", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=resolve_path("configs/embed/default.yaml"), help="YAML config")
    parser.add_argument("--out", help="run folder (overrides embed.out)")
    parser.add_argument("--max-steps", type=int, help="stop after N optimiser steps (overrides embed.max_steps)")
    parser.add_argument("--holdout", type=int, help="phrasings held out per entry (overrides embed.holdout_per_entry)")
    parser.add_argument("--promote", action="store_true", help="install the adapter where the app reads it")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train (and optionally promote); print the report as JSON. Exit 2 on an invalid config."""
    from logsetup import configure_cli_logging

    configure_cli_logging()
    args = make_parser().parse_args(argv)
    overrides = {k: v for k, v in {"out": args.out, "max_steps": args.max_steps,
                                   "holdout_per_entry": args.holdout}.items() if v is not None}  # fmt: skip
    try:
        config = EmbedTrainConfig.from_yaml(args.config, overrides)
    except (ConfigError, OSError, TypeError, yaml.YAMLError) as exc:
        print(f"Configuration refusée : {exc}", file=sys.stderr)
        return 2
    report = train(config)
    if args.promote:
        from settings import get_settings

        target = get_settings().rag.embedding_adapter
        report["promoted_to"] = str(target) if target and promote(report, target) else None
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
