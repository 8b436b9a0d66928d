"""Local transformers backend: any HF id or path (the packaged GGUF is converted once), optional PEFT adapter.

On CUDA it loads bf16 weights, 4-bit NF4 through bitsandbytes when quantization allows; on CPU
it stays float32 (bf16 matmuls are slower than fp32 on most CPUs without AMX).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from rag.llm.base import GenerationError, LLMBackend
from rag.llm.gguf import resolve_checkpoint

log = logging.getLogger(__name__)


def load_options(quantization: str, cuda: bool) -> dict:
    """from_pretrained keyword arguments for the hardware: NF4/bf16 on CUDA, float32 on CPU."""
    if not cuda:
        return {"dtype": "float32"}
    import torch

    options: dict = {"dtype": torch.bfloat16, "device_map": "auto"}
    if quantization in ("auto", "nf4"):
        import bitsandbytes  # noqa: F401  (only on CUDA machines; fails loudly if missing)
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    return options


class TransformersBackend(LLMBackend):
    """Greedy/sampled generation with transformers, streamed through TextIteratorStreamer."""

    name = "transformers"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.model = None
        self.tokenizer = None
        self._lock = threading.Lock()  # one generation at a time per loaded model

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            checkpoint = resolve_checkpoint(self.config.model, self.config.models_dir)
            cuda = torch.cuda.is_available()
            options = load_options(self.config.quantization, cuda)
            self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
            model = AutoModelForCausalLM.from_pretrained(checkpoint, **options)
            if self.config.adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, self.config.adapter)
            self.model = model.eval()
        except (OSError, ValueError, ImportError, RuntimeError) as exc:
            raise GenerationError(f"cannot load {self.config.model}: {exc}") from exc
        log.info("transformers model ready: %s (%s)", self.config.model, "cuda" if cuda else "cpu float32")

    def stream(self, messages: list[dict], stop: threading.Event | None = None) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        if self.model is None:
            raise GenerationError("model not loaded")
        stop = stop or threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return stop.is_set()

        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.model.device)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=self.config.max_seconds
        )
        sampling = (
            {"do_sample": True, "temperature": self.config.temperature}
            if self.config.temperature > 0
            else {"do_sample": False}
        )
        kwargs = dict(
            **inputs,
            max_new_tokens=self.config.max_new_tokens,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_Stop()]),
            pad_token_id=self.tokenizer.eos_token_id,
            repetition_penalty=self.config.repetition_penalty,
            **sampling,
        )
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # reported to the consumer below
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="llm-generate", daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        except Exception as exc:  # streamer timeout
            stop.set()
            raise GenerationError(f"generation stalled: {exc}") from exc
        finally:
            if worker.is_alive():
                stop.set()  # the consumer stopped early: end generation at the next token
        if errors:
            raise GenerationError(f"generation failed: {errors[0]}") from errors[0]
