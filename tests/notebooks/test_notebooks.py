"""The notebooks run top to bottom (nbclient, kernel `python3`) on the shipped data and show real results."""

from __future__ import annotations

import json

import pytest

from settings import ROOT

pytestmark = pytest.mark.slow

NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 600


def execute(name: str, parameters: dict | None = None):
    """Run notebooks/<name> from notebooks/ after replacing the `parameters` cell; return the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if parameters:
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # fmt: skip
    return nb


def outputs_text(nb) -> str:
    """Every stream and text/plain output of the executed notebook, joined."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{out.ename}: {out.evalue}"
            if out.output_type == "stream":
                parts.append(out.text)
            elif "text/plain" in out.get("data", {}):
                parts.append(out.data["text/plain"])
    return "\n".join(parts)


def plotly_figures(nb) -> int:
    """How many Plotly figures the executed notebook displayed."""
    return sum(
        "application/vnd.plotly.v1+json" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", [])
    )


def test_committed_notebooks_carry_no_outputs():
    import nbformat

    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert all(
            not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"
        ), path


def test_dataset_exploration_on_the_repository_data():
    text = outputs_text(execute("dataset_exploration.ipynb"))
    assert "Données personnelles détectées : 0" in text
    assert "Sources présentes dans les deux splits : 0" in text
    assert "validation %" in text  # category balance table


def test_dataset_exploration_builds_a_missing_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")  # no tickets: KB only, hermetic
    nb = execute("dataset_exploration.ipynb", {"DATA_DIR": str(tmp_path / "processed")})
    text = outputs_text(nb)
    assert "Jeu construit dans" in text and "Données personnelles détectées : 0" in text
    assert (tmp_path / "processed" / "train.jsonl").is_file()
    assert plotly_figures(nb) >= 2


def test_dataset_exploration_fails_on_personal_data(tmp_path):
    from nbclient.exceptions import CellExecutionError

    row = {"messages": [{"role": "system", "content": "Tu es MobiliaChat."},
                        {"role": "user", "content": "Rappelez-moi au 06 12 34 56 78 svp"},
                        {"role": "assistant", "content": "Écrivez à jean.dupont@example.fr"}],
           "source": "faq-x", "category": "assistance", "kind": "faq"}  # fmt: skip
    other = json.loads(json.dumps(row))
    other["messages"][1]["content"] = "Et mon IBAN FR76 3000 6000 0112 3456 7890 189 ?"
    for name, example in (("train.jsonl", row), ("validation.jsonl", other | {"source": "faq-y"})):
        (tmp_path / name).write_text(json.dumps(example, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(CellExecutionError, match="donnée\\(s\\) personnelle"):
        execute("dataset_exploration.ipynb", {"DATA_DIR": str(tmp_path)})


@pytest.fixture(scope="module")
def fallback_run(tmp_path_factory):
    """The evaluation notebook with no results anywhere: it runs its own extractive evaluation."""
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOBILIA_EVAL_RUNS_DIR", str(runs))
        nb = execute("evaluation_report.ipynb")
    return nb, runs


def test_evaluation_report_runs_its_own_evaluation(fallback_run):
    nb, runs = fallback_run
    results = runs / "eval-notebook" / "results.json"
    assert results.is_file()
    text = outputs_text(nb)
    assert f"Résultats : {results}" in text
    assert "extractif" in text and "chrF" in text and "faits ×100" in text
    assert plotly_figures(nb) >= 2  # comparison and latency


def test_evaluation_report_on_a_given_file_with_gaps(fallback_run, tmp_path):
    """A failed candidate and a set without references leave holes in the metrics: the report still runs."""
    _, runs = fallback_run
    results = json.loads((runs / "eval-notebook" / "results.json").read_text(encoding="utf-8"))
    results["candidates"].append({**results["candidates"][0], "name": "adaptateur-absent", "kind": "llm",
                                  "status": "failed", "error": "aucun run d'entraînement terminé"})  # fmt: skip
    results["sets"] = [s for s in results["sets"] if s["name"] != "validation"]
    results["items"] = [i for i in results["items"] if i["set"] != "validation"]
    results["per_set"].pop("validation", None)
    for metrics in results["metrics"].values():
        for key in ("chrf", "bleu", "rougeL", "gen_chrf", "gen_rougeL"):
            metrics.pop(key, None)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results, ensure_ascii=False), encoding="utf-8")

    text = outputs_text(execute("evaluation_report.ipynb", {"RESULTS": str(path)}))
    assert f"Résultats : {path}" in text
    assert "adaptateur-absent non évalué : aucun run d'entraînement terminé" in text
    assert "extractif" in text and "faits ×100" in text
    assert "ROUGE-L ×100" not in text  # no reference left: nothing to plot for it
