"""Fixtures of the training tests: a tiny Llama and its tokenizer made locally (no download), tiny datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# A local checkpoint folder can replace the tiny model (e.g. a converted SmolLM2), like the other test models.
TINY_MODEL = os.environ.get("MOBILIA_TEST_TRAIN_MODEL", "")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
WORDS = [
    "bonjour",
    "comment",
    "télécharger",
    "ma",
    "facture",
    "où",
    "est",
    "mon",
    "code",
    "rio",
    "réseau",
    "pas",
    "de",
    "signal",
    "vos",
    "factures",
    "sont",
    "dans",
    "votre",
    "espace",
    "abonné",
    "rubrique",
    "mes",
    "appelez",
    "le",
    "3179",
    "gratuit",
    "redémarrez",
    "le",
    "téléphone",
    "désactivez",
    "mode",
    "avion",
    "tu",
    "es",
    "mobiliachat",
    "assistant",
    "service",
    "client",
    "free",
    "mobile",
    "réponds",
    "en",
    "français",
    ",",
    ".",
    "?",
    "!",
    "'",
    ":",
]


def make_tiny_model(folder: Path) -> Path:
    """A 2-layer, hidden-32 Llama with a word-level tokenizer over a small French vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys([*specials, *WORDS]))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="<|end|>",
        additional_special_tokens=specials[4:],
    )  # fmt: skip
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, bos_token_id=2, eos_token_id=vocab["<|end|>"],
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Path of the tiny local checkpoint (built once per session)."""
    if TINY_MODEL:
        return Path(TINY_MODEL)
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def chat(question: str, answer: str, source: str = "s", category: str = "facturation") -> dict:
    return {
        "messages": [
            {"role": "system", "content": "tu es mobiliachat"},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        "source": source,
        "category": category,
        "kind": "faq",
    }


@pytest.fixture
def tiny_data(tmp_path) -> tuple[Path, Path]:
    """train.jsonl / validation.jsonl of a few chat examples."""
    rows = [
        chat("comment télécharger ma facture ?", "vos factures sont dans votre espace abonné rubrique mes factures ."),
        chat("où est ma facture ?", "vos factures sont dans votre espace abonné ."),
        chat("pas de signal !", "désactivez le mode avion , redémarrez le téléphone ."),
        chat("mon code rio ?", "appelez le 3179 gratuit ."),
    ]
    train, validation = tmp_path / "train.jsonl", tmp_path / "validation.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows * 3), encoding="utf-8")
    validation.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:2]), encoding="utf-8")
    return train, validation


def tiny_config_text(model: Path, train: Path, validation: Path, runs_dir: Path, max_steps: int = 4) -> str:
    """YAML of a few-step CPU run on the tiny model."""
    return f"""
### model
model:
  name_or_path: {model}
### lora
lora:
  r: 4
  alpha: 8
  target_modules: [q_proj, v_proj]
### data
data:
  train_file: {train}
  validation_file: {validation}
  max_length: 64
### training
training:
  max_steps: {max_steps}
  per_device_train_batch_size: 2
  per_device_eval_batch_size: 2
  learning_rate: 0.01
  warmup_steps: 0
  logging_steps: 1
  eval_steps: 2
  save_steps: 2
  threads: 1
### output
output:
  run_name: tiny
  runs_dir: {runs_dir}
"""
