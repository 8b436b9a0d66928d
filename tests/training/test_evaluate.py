"""Evaluation end to end: candidates compared on small sets, results written, promotion and rollback.

Peers are real: the shipped KB index, a tiny local Llama (+ a LoRA adapter made with PEFT), and
llama-cpp-python's OpenAI-compatible server serving the packaged GGUF.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer import AnswerEngine
from rag.llm.selection import ChatModelService, SelectionError
from settings import get_settings
from storage import AppStateRepository
from tests.conftest import EVAL_DIR
from training.config import ConfigError, EvalConfig, load_config
from training.eval_runner import EvaluationRunner, customize, endpoint_secrets
from training.evaluate import (
    RESULTS_FILE,
    candidate_llm,
    load_questions,
    main,
    promotion_choice,
    run_evaluation,
    spread,
)

EVAL_ITEMS = ["ev-001", "ev-003"]  # facts about invoices (no escalation)


def write_sets(folder: Path) -> tuple[Path, Path]:
    """A 2-example validation split (chat format) and a 3-item labelled set (one escalation)."""
    validation = folder / "validation.jsonl"
    rows = [("Comment télécharger ma facture ?", "Dans votre Espace Abonné, rubrique Mes factures, en PDF."),
            ("Mon code RIO ?", "Appelez le 3179 depuis votre mobile : le code RIO arrive par SMS.")]  # fmt: skip
    validation.write_text("".join(json.dumps({"messages": [
        {"role": "system", "content": "Tu es MobiliaChat."}, {"role": "user", "content": q},
        {"role": "assistant", "content": a}], "category": "facturation", "source_id": f"s{i}"}, ensure_ascii=False) + "\n"
        for i, (q, a) in enumerate(rows)), encoding="utf-8")  # fmt: skip
    labelled = folder / "labelled.jsonl"
    items = [json.loads(line) for line in (EVAL_DIR / "chat_eval.jsonl").read_text(encoding="utf-8").splitlines()]
    chosen = [i for i in items if i["id"] in EVAL_ITEMS] + [next(i for i in items if i.get("expect_escalation"))]
    labelled.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in chosen), encoding="utf-8")
    return validation, labelled


def config_text(folder: Path, candidates: str, name: str = "test") -> str:
    validation, labelled = write_sets(folder)
    return f"""
### evaluation
evaluation:
  name: {name}
  runs_dir: {folder / "runs"}
### sets
sets:
  validation_file: {validation}
  eval_files: [{labelled}]
### generation
generation:
  max_new_tokens: 12
  max_seconds: 60
### candidates
candidates:
{candidates}
"""


EXTRACTIVE = "  - {name: extractif, kind: extractive}\n"


def test_config_errors_are_listed_in_french(tmp_path):
    bad = config_text(tmp_path, EXTRACTIVE + "  - {name: extractif, kind: llm, backend: llamacpp, adapter: x, colour: red}\n")
    with pytest.raises(ConfigError) as err:
        load_config(EvalConfig, text=bad)
    text = "\n".join(err.value.errors)
    assert "clé inconnue « candidates[1].colour »" in text
    assert "utilisé plusieurs fois" in text and "exige backend: transformers" in text
    with pytest.raises(ConfigError, match="ajoutez au moins un candidat"):
        load_config(EvalConfig, text=config_text(tmp_path, ""))
    with pytest.raises(ConfigError, match="se modifie dans le fichier YAML"):
        load_config(EvalConfig, text=config_text(tmp_path, EXTRACTIVE), overrides=["candidates.name=x"])
    for name in ("quick", "full", "endpoint"):  # the shipped configs are valid
        assert load_config(EvalConfig, f"configs/eval/{name}.yaml").candidates


def test_spread_is_even_and_reproducible():
    assert spread(list(range(10)), 3) == [0, 3, 6] and spread([1, 2], 0) == [1, 2] and spread([1, 2], 5) == [1, 2]


def test_questions_keep_references_and_labels(tmp_path):
    config = load_config(EvalConfig, text=config_text(tmp_path, EXTRACTIVE))
    items = load_questions(config)
    assert [i["set"] for i in items] == ["validation"] * 2 + ["labelled"] * 3
    assert items[0]["reference"].startswith("Dans votre Espace Abonné") and items[0]["expect_escalation"] is None
    assert items[2]["expected_facts"] and items[-1]["expect_escalation"] is True and items[2]["reference"] is None


@pytest.fixture
def tiny_adapter(tiny_model, tmp_path) -> Path:
    """An (untrained) LoRA adapter on the tiny model, saved as training would."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))  # fmt: skip
    model.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


@pytest.mark.slow
def test_comparison_end_to_end_then_promotion_and_rollback(tmp_path, shipped_config, embedder, tiny_model,
                                                          tiny_adapter, llama_server, db, monkeypatch):  # fmt: skip
    monkeypatch.setenv("MOBILIA_RAG__LLM__ENDPOINTS", json.dumps([{"name": "llama", "base_url": llama_server,
                                                                   "model": "smollm2"}]))  # fmt: skip
    candidates = (
        EXTRACTIVE
        + f"  - {{name: tiny-plain, kind: llm, prompt: plain, backend: transformers, model: {tiny_model}}}\n"
        + f"  - {{name: tiny-lora, kind: llm, prompt: plain, backend: transformers, model: {tiny_model}, adapter: {tiny_adapter}}}\n"
        + "  - {name: endpoint, kind: llm, backend: openai, endpoint: llama}\n"
        + f"  - {{name: broken, kind: llm, backend: transformers, adapter: {tmp_path / 'nope'}}}\n"
    )  # fmt: skip
    config = load_config(EvalConfig, text=config_text(tmp_path, candidates))
    engine = AnswerEngine(shipped_config.model_copy(update={"llm": get_settings().rag.llm}), embedder)
    updates = []
    results = run_evaluation(config, updates.append, engine=engine)

    out = tmp_path / "runs" / "eval-test"
    assert json.loads((out / RESULTS_FILE).read_text(encoding="utf-8"))["name"] == "test"
    report = (out / "results.md").read_text(encoding="utf-8")
    assert "| extractif |" in report and "broken non évalué" in report and "Comment télécharger ma facture" in report
    status = {c["name"]: c["status"] for c in results["candidates"]}
    assert status == {"extractif": "ok", "tiny-plain": "ok", "tiny-lora": "ok", "endpoint": "ok", "broken": "failed"}
    assert "adaptateur introuvable" in next(c["error"] for c in results["candidates"] if c["name"] == "broken")
    assert updates[-1] == {"done": 5 * 5, "state": "finished"}

    # Every question has every successful candidate's answer, with its verdicts.
    for item in results["items"]:
        assert set(item["answers"]) == {"extractif", "tiny-plain", "tiny-lora", "endpoint"}
    extractive = results["metrics"]["extractif"]
    assert extractive["fact_recall"] == 1.0 and extractive["escalation_accuracy"] == 1.0
    assert extractive["fallback_rate"] == 0 and 0 <= extractive["chrf"] <= 100
    assert results["per_set"]["labelled"]["extractif"]["answered"] == 3
    plain = results["metrics"]["tiny-plain"]
    assert "escalation_accuracy" not in plain and "gen_chrf" in plain  # no rules without the RAG pipeline
    endpoint = results["metrics"]["endpoint"]
    assert endpoint["escalation_accuracy"] == 1.0  # the rules run before any generation
    for item in results["items"]:
        answer = item["answers"]["endpoint"]
        assert answer["mode_used"] == "generative" or answer["fallback_reason"]
    assert engine.answer_mode == "extractive"  # the engine is left as it was found

    # Promotion from the results, then rollback.
    with pytest.raises(SelectionError, match="n'a pas été évalué"):
        promotion_choice(results, "broken")
    with pytest.raises(SelectionError, match="sans contexte"):
        promotion_choice(results, "tiny-lora")
    models = ChatModelService(AppStateRepository(db), engine)
    choice = models.promote(promotion_choice(results, "endpoint"), by="t.trainer")
    assert choice["answer_mode"] == "hybrid" and choice["origin"].startswith("evaluation:test@")
    assert choice["metrics"]["escalation_accuracy"] == 1.0
    assert engine.answer_mode == "hybrid" and engine.llm.config.endpoint_entry().base_url == llama_server
    assert engine.llm.wait(600)  # an event: the guard only stops a hang
    answer = engine.answer("Comment télécharger ma facture ?", timeout=30)
    assert answer.mode_used == "generative" or answer.fallback_reason.startswith("low_confidence")
    assert models.rollback(by="t.trainer") is None and engine.answer_mode == "extractive"


@pytest.mark.slow
def test_runner_runs_the_cli_in_a_subprocess(tmp_path, shipped_config, monkeypatch):
    monkeypatch.setenv("MOBILIA_RAG__INDEX_DIR", str(shipped_config.index_dir))
    runner = EvaluationRunner(runs_dir=tmp_path / "runs")
    text = config_text(tmp_path, EXTRACTIVE + "  - {name: absent, kind: llm, backend: transformers, adapter: latest}\n")
    assert runner.candidate_names(text) == (["extractif", "absent"], [])
    out = runner.start(text, candidates=["extractif", "absent"], sets=["validation"], name="sub")
    states = [p.state for p in runner.stream(interval=0.5, max_seconds=300)]
    assert states[-1] == "finished", runner.progress().log_tail
    results = runner.results("sub")
    assert out.name == "eval-sub" and [s["name"] for s in results["sets"]] == ["validation"]
    assert results["candidates"][1]["status"] == "failed" and "aucun run" in results["candidates"][1]["error"]
    assert runner.list_results()[0]["name"] == "sub" and runner.progress().done == runner.progress().total == 4
    with pytest.raises(ConfigError, match="candidat inconnu"):
        customize(text, candidates=["gpt-9"])


# ----------------------------------------------------------------------------- endpoint allow-list


@pytest.fixture
def endpoints(monkeypatch, llm_peer):
    """Two recording peers: the settings' endpoint ('default', key sk-default) and an allow-listed 'partner'."""
    default, partner = llm_peer(), llm_peer()
    monkeypatch.setenv("MOBILIA_RAG__LLM__BASE_URL", default.url)
    monkeypatch.setenv("MOBILIA_RAG__LLM__API_KEY", "sk-default")
    monkeypatch.setenv("MOBILIA_RAG__LLM__ENDPOINTS", json.dumps([{"name": "partner", "base_url": partner.url,
                                                                   "model": "partner-model", "api_key": "sk-partner"}]))  # fmt: skip
    return default, partner


def test_a_rogue_base_url_is_refused_and_receives_nothing(tmp_path, endpoints, llm_peer, capsys):
    """The attack: an evaluator's candidate points at their own server to collect the live API key."""
    rogue = llm_peer()
    text = config_text(tmp_path, EXTRACTIVE + f"  - {{name: rogue, kind: llm, backend: openai, base_url: {rogue.url}}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(EvalConfig, text=text)
    message = "\n".join(err.value.errors)
    assert "n'est pas un endpoint LLM autorisé" in message and "allow-list" in message
    runner = EvaluationRunner(runs_dir=tmp_path / "runs")
    with pytest.raises(ConfigError, match="endpoint LLM autorisé"):
        runner.start(text, candidates=["extractif", "rogue"], sets=["validation"])
    (tmp_path / "rogue.yaml").write_text(text, encoding="utf-8")
    assert main(["--config", str(tmp_path / "rogue.yaml")]) == 2  # the CLI runs the same validation
    assert "endpoint LLM autorisé" in capsys.readouterr().err
    assert not runner.running and rogue.requests == []
    unknown = config_text(tmp_path, EXTRACTIVE + "  - {name: x, kind: llm, backend: openai, endpoint: nowhere}\n")
    with pytest.raises(ConfigError, match="inconnu"):
        load_config(EvalConfig, text=unknown)


def test_an_allow_listed_endpoint_is_picked_by_name_or_exact_url(tmp_path, endpoints):
    _, partner = endpoints
    for spec in ("endpoint: partner", f"base_url: {partner.url}/", "endpoint: partner, endpoint_model: partner-model"):
        config = load_config(EvalConfig, text=config_text(tmp_path, f"  - {{name: p, kind: llm, backend: openai, {spec}}}\n"))
        assert candidate_llm(config.candidates[0], config) == {"backend": "openai", "endpoint": "partner",
                                                              "max_new_tokens": 12}  # fmt: skip
    wrong_model = config_text(tmp_path, "  - {name: p, kind: llm, backend: openai, endpoint: partner, endpoint_model: gpt}\n")
    with pytest.raises(ConfigError, match="sert le modèle"):
        load_config(EvalConfig, text=wrong_model)
    # The subprocess only gets the key of the endpoint its candidates name.
    config = load_config(EvalConfig, text=config_text(tmp_path, "  - {name: p, kind: llm, backend: openai, endpoint: partner}\n"))
    secrets = endpoint_secrets(config)
    assert "MOBILIA_RAG__LLM__API_KEY" not in secrets and "sk-default" not in json.dumps(secrets)
    assert json.loads(secrets["MOBILIA_RAG__LLM__ENDPOINTS"])[0]["api_key"] == "sk-partner"
    config = load_config(EvalConfig, text=config_text(tmp_path, "  - {name: d, kind: llm, backend: openai, endpoint: default}\n"))
    assert endpoint_secrets(config) == {"MOBILIA_RAG__LLM__ENDPOINTS": "[]", "MOBILIA_RAG__LLM__API_KEY": "sk-default"}


def test_the_evaluated_endpoint_receives_its_own_key_only(tmp_path, endpoints, shipped_config, embedder):
    default, partner = endpoints
    config = load_config(EvalConfig, text=config_text(tmp_path, "  - {name: p, kind: llm, backend: openai, endpoint: partner}\n"))
    engine = AnswerEngine(shipped_config.model_copy(update={"llm": get_settings().rag.llm}), embedder)
    results = run_evaluation(config, engine=engine)
    assert results["candidates"][0]["status"] == "ok", results["candidates"][0]["error"]
    assert partner.authorizations and set(partner.authorizations) == {"Bearer sk-partner"}
    assert default.requests == []
    assert "sk-partner" not in json.dumps(results) and "sk-default" not in json.dumps(results)


@pytest.mark.slow
def test_the_subprocess_resolves_the_endpoint_by_name_with_its_key_only(tmp_path, endpoints, shipped_config,
                                                                        monkeypatch):  # fmt: skip
    """Through the tab's runner: scrubbed environment, the endpoint passed by name, only its key given."""
    default, partner = endpoints
    monkeypatch.setenv("MOBILIA_RAG__INDEX_DIR", str(shipped_config.index_dir))
    monkeypatch.setenv("MOBILIA_SECRET_KEY", "server-signing-secret")
    runner = EvaluationRunner(runs_dir=tmp_path / "runs")
    text = config_text(tmp_path, EXTRACTIVE)
    runner.start(text, candidates=[], endpoints=["partner"], sets=["validation"], name="peer")
    states = [p.state for p in runner.stream(interval=0.5, max_seconds=300)]
    assert states[-1] == "finished", runner.progress().log_tail
    results = runner.results("peer")
    assert [c["name"] for c in results["candidates"]] == ["endpoint-partner"]
    assert results["candidates"][0]["status"] == "ok", results["candidates"][0]["error"]
    assert partner.authorizations and set(partner.authorizations) == {"Bearer sk-partner"}
    assert default.requests == []
    saved = "".join(p.read_text(encoding="utf-8", errors="replace") for p in (tmp_path / "runs").rglob("*") if p.is_file())
    assert "sk-partner" not in saved and "sk-default" not in saved and "server-signing-secret" not in saved
