"""Generation benchmark: model load, time to first token and tokens/s for a ~512-token RAG prompt.

    python -m bench.generate [--new-tokens 48] [--skip-transformers]

Prints one JSON object. Runtimes: transformers float32 (the default local path), bfloat16 on
CPU, float32 with the fixed system prompt's KV cache reused, and llama.cpp on the packaged
Q4_1 GGUF and its one-time Q8_0 / BF16 re-encodings (cold, then a new question whose prompt
shares only the system prompt with the previous one). Also the hybrid fallback overhead when the
HTTP endpoint is down (refused, and accepting but silent). Targets (issue 8): first token < 1 s,
>= 40 tokens/s, hybrid fallback within timeout + 50 ms.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of `python -m bench.generate`."""
    parser = argparse.ArgumentParser(prog="python -m bench.generate")
    parser.add_argument("--new-tokens", type=int, default=48, help="tokens generated per measure")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="approximate RAG prompt length")
    parser.add_argument("--skip-transformers", action="store_true", help="only llama.cpp and the fallback")
    return parser


def rag_messages(tokenizer, target: int, question: str, reverse: bool = False) -> list[dict]:
    """A real RAG prompt over shipped KB entries, grown until it has about `target` tokens.

    reverse=True takes other entries (a later question with other context: only the system prompt is shared).
    """
    from rag.llm.prompt import build_messages
    from rag.sources import load_kb

    entries = [e for e in load_kb(ROOT / "datasets" / "raw") if e.kind == "faq"]
    entries = entries[::-1] if reverse else entries
    chosen: list = []
    for entry in entries:
        messages = build_messages(question, [*chosen, entry], max_chars=700)
        length = len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])
        if length > target:
            break
        chosen.append(entry)
    return build_messages(question, chosen, max_chars=700)


def _rates(first: float, total: float, tokens: int) -> dict:
    return {
        "ttft_s": round(first, 3),
        "tokens_per_s": round((tokens - 1) / max(total - first, 1e-9), 1),
        "new_tokens": tokens,
    }


def bench_transformers(checkpoint: str, messages: list[dict], new_tokens: int, dtype, prefix_cache: bool) -> dict:
    """Greedy decode of `new_tokens` tokens; first token timed separately (prefill)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype).eval()
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    input_ids = ids["input_ids"]
    cache, n = None, 0
    if prefix_cache:  # the system prompt is identical for every question: prefill it once
        system = tokenizer.apply_chat_template(messages[:1], tokenize=True, return_tensors="pt", return_dict=True)
        n = system["input_ids"].shape[1]
        assert torch.equal(input_ids[0, :n], system["input_ids"][0])
        cache = DynamicCache(config=model.config)
        with torch.inference_mode():
            model(input_ids=input_ids[:, :n], past_key_values=cache, use_cache=True)

    def run(tokens: int) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            if cache is not None:  # prefill only the part after the cached system prompt, then decode
                past = copy.deepcopy(cache)
                out = model(input_ids=input_ids[:, n:], past_key_values=past, use_cache=True)
                next_id = out.logits[:, -1:].argmax(-1)
                for _ in range(tokens - 1):
                    out = model(input_ids=next_id, past_key_values=past, use_cache=True)
                    next_id = out.logits[:, -1:].argmax(-1)
            else:
                model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=tokens,
                    min_new_tokens=tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.eos_token_id,
                )
        return time.perf_counter() - start

    run(2)  # warm-up (allocations, kernels)
    first = statistics.median(run(1) for _ in range(3))
    total = run(new_tokens)
    return {"prompt_tokens": int(input_ids.shape[1]), **_rates(first, total, new_tokens)}


def bench_llamacpp(messages: list[dict], other: list[dict], new_tokens: int, threads: int, path: Path,
                   flash: bool = True) -> dict:  # fmt: skip
    """llama.cpp on a GGUF: load, cold prompt, then a new question (other context) sharing the system prompt."""
    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(model_path=str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, flash_attn=flash,
                verbose=False)  # fmt: skip
    load = time.perf_counter() - start
    list(llm.create_completion("Bonjour", max_tokens=2))  # warm-up (thread pool, buffers), shares no prefix

    def run(msgs: list[dict]) -> dict:
        text = _chat_prompt(llm, msgs)
        prompt_tokens = len(llm.tokenize(text.encode(), add_bos=False, special=True))
        start = time.perf_counter()
        first, count = None, 0
        for _chunk in llm.create_completion(text, max_tokens=new_tokens, temperature=0.0, stream=True):
            count += 1
            if first is None:
                first = time.perf_counter() - start
        return {"prompt_tokens": prompt_tokens, **_rates(first, time.perf_counter() - start, count)}

    cold = run(messages)
    cached = run(other)  # same system prompt, other question and context: the system prompt's KV is reused
    llm.close()
    return {"load_s": round(load, 2), "cold": cold, "system_prompt_cached": cached}


def _chat_prompt(llm, messages: list[dict]) -> str:
    """The GGUF's own chat template rendered to text (what create_chat_completion feeds the model)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = llm.metadata["tokenizer.chat_template"]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True)


def bench_fallback(timeout: float) -> dict:
    """Hybrid answers with the HTTP backend down: connection refused, and a server that never answers."""
    from rag.answer import AnswerEngine
    from rag.llm.manager import ModelManager
    from settings import get_settings

    config = get_settings().rag.model_copy(update={"answer_mode": "hybrid"})
    question = "Comment télécharger ma facture ?"
    extractive = AnswerEngine(config.model_copy(update={"answer_mode": "extractive"}))
    extractive.answer(question)
    base_ms = statistics.median(extractive.answer(question).latency_ms for _ in range(5))
    results = {"timeout_s": timeout, "extractive_ms": round(base_ms, 1)}
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts TCP connections (kernel backlog) but never answers
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused_port = probe.getsockname()[1]  # closed as soon as this block ends
    for case, port in (("refused", refused_port), ("silent", silent.getsockname()[1])):
        llm_config = config.llm.model_copy(
            update={"backend": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "timeout": timeout}
        )
        from rag.llm.http import OpenAICompatibleBackend

        manager = ModelManager(llm_config, backend=OpenAICompatibleBackend(llm_config))
        manager.state = "ready"  # measure the per-answer fallback, not the start-up probe
        engine = AnswerEngine(config.model_copy(update={"llm": llm_config}), extractive.embedder, llm=manager)
        engine._retriever = extractive.retriever
        runs = [engine.answer(question) for _ in range(3)]
        worst = max(a.latency_ms for a in runs)
        results[case] = {
            "worst_ms": round(worst, 1),
            "overhead_ms": round(worst - base_ms, 1),
            "fallback_reason": runs[-1].fallback_reason,
            "within_timeout_plus_50ms": worst <= timeout * 1000 + 50,
        }
    silent.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print JSON."""
    args = make_parser().parse_args(argv)
    import torch
    from transformers import AutoTokenizer

    from rag.llm.gguf import convert_gguf, packaged_gguf_path
    from settings import LLMConfig

    out: dict = {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        checkpoint = str(convert_gguf(packaged_gguf_path(), Path(tmp)))
        out["load"] = {"gguf_to_hf_conversion_s": round(time.perf_counter() - start, 2)}
        from rag.llm.local import TransformersBackend

        backend = TransformersBackend(LLMConfig(backend="transformers", models_dir=Path(tmp)))
        start = time.perf_counter()
        backend.load()  # the conversion is cached: a plain checkpoint load
        out["load"]["transformers_cached_load_s"] = round(time.perf_counter() - start, 2)
        del backend
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        messages = rag_messages(tokenizer, args.prompt_tokens, "Comment télécharger ma facture ?")
        other = rag_messages(tokenizer, args.prompt_tokens, "Puis-je payer par virement ?", reverse=True)
        if not args.skip_transformers:
            out["transformers_fp32"] = bench_transformers(checkpoint, messages, args.new_tokens, torch.float32, False)
            out["transformers_bf16"] = bench_transformers(checkpoint, messages, args.new_tokens, torch.bfloat16, False)
            out["transformers_fp32_system_kv_reuse"] = bench_transformers(
                checkpoint, messages, args.new_tokens, torch.float32, True
            )
        from rag.llm.gguf import requantize_gguf

        cpus = os.cpu_count() or 1
        from rag.llm.llamacpp import fastest_gguf_type

        out["llamacpp_q4_1_no_flash_attn"] = bench_llamacpp(messages, other, args.new_tokens, cpus,
                                                            packaged_gguf_path(), flash=False)  # fmt: skip
        for gguf_type in ("original", "q8_0", "bf16"):  # the packaged Q4_1 file, then its one-time re-encodings
            start = time.perf_counter()
            path = packaged_gguf_path() if gguf_type == "original" else requantize_gguf(packaged_gguf_path(), Path(tmp), gguf_type)
            key = "llamacpp_q4_1" if gguf_type == "original" else f"llamacpp_{gguf_type}"
            reencode = round(time.perf_counter() - start, 2)
            for threads in sorted({1, cpus}):
                out[f"{key}_{threads}_threads"] = bench_llamacpp(messages, other, args.new_tokens, threads, path)
            if gguf_type != "original":
                out[f"{key}_{cpus}_threads"]["reencode_s"] = reencode
        runtime = f"llamacpp_{fastest_gguf_type()}_{cpus}_threads"  # the app's default (gguf_type: auto)
        default = out[runtime]["cold"]
        out["targets"] = {"runtime": runtime, "prompt_tokens": default["prompt_tokens"],
                          "first_token_below_1s": default["ttft_s"] < 1.0,
                          "at_least_40_tokens_per_s": default["tokens_per_s"] >= 40}  # fmt: skip
    out["hybrid_fallback_http_down"] = bench_fallback(timeout=1.0)
    out["targets"]["hybrid_fallback_within_timeout_plus_50ms"] = all(
        v["within_timeout_plus_50ms"] for k, v in out["hybrid_fallback_http_down"].items() if isinstance(v, dict)
    )
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
