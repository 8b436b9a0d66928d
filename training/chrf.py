"""chrF (sacrebleu) of a run's adapter versus its base model, on the validation split.

    python -m training.chrf --run runs/smollm2-lora-cpu-20260101-120000 --limit 40

Both models answer the same validation prompts greedily (system + question, no RAG context);
chrF compares each answer with the reference one. Writes ``chrf.json`` in the run folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from training.config import ConfigError, TrainConfig, load_config, resolve_path
from training.train import ADAPTER_DIR, CONFIG_FILE, base_model_path, fit_to_template, read_examples


def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy answers to chat prompts, batched with left padding."""
    import torch

    tokenizer.padding_side = "left"
    outputs = []
    for i in range(0, len(prompts), batch_size):
        texts = [
            tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            for p in prompts[i : i + batch_size]
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        outputs += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return [o.strip() for o in outputs]


def compare(run_dir: Path, limit: int = 40, max_new_tokens: int = 96) -> dict:
    """chrF of the base model and of base + adapter on the first `limit` validation examples."""
    import sacrebleu
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = resolve_path(run_dir)
    config = load_config(TrainConfig, run_dir / CONFIG_FILE)
    rows = read_examples(resolve_path(config.data.validation_file))[:limit]
    path = base_model_path(config)
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / ADAPTER_DIR))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts = [fit_to_template(r["messages"], tokenizer)[:-1] for r in rows]
    references = [r["messages"][-1]["content"] for r in rows]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, config.model.dtype)).eval()
    result = {"examples": len(rows), "max_new_tokens": max_new_tokens, "base_model": path}
    for name in ("base", "adapter"):
        if name == "adapter":
            model = PeftModel.from_pretrained(model, str(run_dir / ADAPTER_DIR)).eval()
        start = time.perf_counter()
        hyps = generate(model, tokenizer, prompts, max_new_tokens)
        result[name] = {
            "chrf": round(sacrebleu.corpus_chrf(hyps, [references]).score, 2),
            "seconds": round(time.perf_counter() - start, 1),
            "sample": hyps[0][:300] if hyps else "",
        }
    result["reference_sample"] = references[0][:300] if references else ""
    (run_dir / "chrf.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return result


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.chrf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="Run folder with adapter/ and config.yaml.")
    parser.add_argument("--limit", type=int, default=40, help="Validation examples compared.")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="Longest generated answer.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        result = compare(Path(args.run), args.limit, args.max_new_tokens)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
