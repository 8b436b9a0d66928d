"""Fine-tune the retriever: a LoRA adapter of the embedding model trained on the KB's own phrasings.

    python -m training.embed [--config configs/embed/default.yaml] [--set embed.out=runs/embed/x] [--promote]

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training.config import (
    ConfigError,
    _f,
    add_config_arguments,
    confine_all,
    load_config,
    overrides_from_args,
    resolve_path,
)

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "configs/embed/default.yaml"


@dataclass
class EmbedArgs:
    """A retriever fine-tuning run (YAML section `embed`)."""

    base_model: str = _f("packaged", "Sentence-transformers model to adapt: packaged (the MiniLM) or a local folder.")
    kb_dir: str = _f("datasets/raw", "KB whose FAQ phrasings and answers make the pairs.")
    out: str = _f("runs/embed/default", "Run folder: adapter/ and report.json.")
    epochs: int = _f(2, "Passes over the pairs.")
    max_steps: int = _f(-1, "> 0: stop each epoch after that many optimiser steps (smoke tests).")
    learning_rate: float = _f(3e-4, "Learning rate of the LoRA weights.")
    batch_size: int = _f(32, "Pairs per batch; the other pairs of a batch are the negatives.")
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA scaling.")
    lora_dropout: float = _f(0.05, "Dropout on the LoRA branch.")
    target_modules: list[str] = field(
        default_factory=lambda: ["query", "key", "value", "dense"], metadata={"help": "BERT modules given a LoRA."}
    )
    paraphrase_pairs: int = _f(2, "Pairs of each phrasing with the next phrasings of its entry.")
    answer_chars: int = _f(600, "Characters of the answer paired with each phrasing (after the title).")
    holdout_per_entry: int = _f(
        1, "Phrasings kept out per entry (with 3 or more) to measure retrieval; 0: train on all."
    )
    seed: int = _f(0, "Seed of the split, the shuffling and the LoRA initialisation.")
    device: str = _f("cpu", "cpu or cuda.", choices=("cpu", "cuda"))


@dataclass
class EmbedTrainConfig:
    """`python -m training.embed` configuration."""

    embed: EmbedArgs = field(default_factory=EmbedArgs)

    def check(self) -> list[str]:
        """French error messages (empty when valid)."""
        e, errors = self.embed, []
        if e.epochs < 1 and e.max_steps <= 0:
            errors.append("embed.epochs doit être ≥ 1 (ou embed.max_steps > 0).")
        if not 0 < e.learning_rate < 1:
            errors.append("embed.learning_rate doit être compris entre 0 et 1.")
        if e.batch_size < 2:
            errors.append("embed.batch_size doit être ≥ 2 (les autres exemples du lot servent de négatifs).")
        if e.lora_r < 1 or e.lora_alpha < 1:
            errors.append("embed.lora_r et embed.lora_alpha doivent être ≥ 1.")
        if not 0 <= e.lora_dropout < 1:
            errors.append("embed.lora_dropout doit être compris entre 0 et 1.")
        if e.holdout_per_entry < 0:
            errors.append("embed.holdout_per_entry doit être ≥ 0.")
        outside = confine_all({"embed.kb_dir": e.kb_dir, "embed.out": e.out})
        if outside:
            return errors + outside
        if not resolve_path(e.kb_dir).is_dir():
            errors.append(f"embed.kb_dir : dossier introuvable ({e.kb_dir}).")
        return errors


def split_pairs(config: EmbedArgs) -> tuple[list[tuple[str, str]], list[tuple[str, int]], list[str], list[int]]:
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


def train(config: EmbedArgs) -> dict:
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
    """Argument parser of `python -m training.embed` (--config, --set, --embed.<key>)."""
    parser = argparse.ArgumentParser(prog="python -m training.embed", description=__doc__.splitlines()[0])
    add_config_arguments(parser, EmbedTrainConfig)
    parser.add_argument("--promote", action="store_true", help="install the adapter where the app reads it")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train (and optionally promote); print the report as JSON. Exit 2 on an invalid config."""
    from logsetup import configure_cli_logging

    configure_cli_logging()
    args = make_parser().parse_args(argv)
    try:
        config = load_config(EmbedTrainConfig, args.config or DEFAULT_CONFIG, overrides_from_args(args))
    except ConfigError as exc:
        print(f"Configuration refusée : {exc}", file=sys.stderr)
        return 2
    report = train(config.embed)
    if args.promote:
        from settings import get_settings

        target = get_settings().rag.embedding_adapter
        report["promoted_to"] = str(target) if target and promote(report, target) else None
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
