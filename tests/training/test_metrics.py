"""Project metric modules (training/metrics/) and training.scoring against hand-computed values."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from training.config import ROOT
from training.scoring import METRICS_DIR, french_tokens, load_metric, sentence_chrf, text_scores

METRICS = ["chrf", "bleu", "rouge_fr", "fact_recall", "escalation_accuracy", "latency"]


def compute(name: str, **inputs) -> dict:
    return load_metric(name).compute(**inputs)


# --- chrF ---------------------------------------------------------------------------------------------------------


def test_chrf_identical_french_is_100():
    text = "Réinitialisez votre code PIN à l'écran « Sécurité »."
    assert compute("chrf", predictions=[text], references=[text])["score"] == pytest.approx(100)
    assert compute("chrf", predictions=[text], references=[text], word_order=2)["score"] == pytest.approx(100)


def test_chrf_accents_are_distinct_characters():
    # "été" vs "ete", beta=2. Char 1-grams: é,t,é vs e,t,e -> 1 match, P = R = 1/3. 2-grams (ét,té vs et,te) and
    # the 3-gram: 0 matches. Orders 4-6 have no n-gram and are skipped: average P = R = (1/3 + 0 + 0) / 3 = 1/9,
    # F = 5PR / (4P + R) = 1/9 -> 11.11.
    assert compute("chrf", predictions=["été"], references=["ete"])["score"] == pytest.approx(100 / 9)
    assert sentence_chrf("été", "ete") == pytest.approx(100 / 9)


def test_chrf_plus_plus_counts_word_ngrams():
    # "ab cd" vs "cd ab" (whitespace ignored for characters: "abcd" vs "cdab").
    # chars: 1-grams 4/4 (P = R = 1), 2-grams {ab,bc,cd} vs {cd,da,ab}: 2/3, 3- and 4-grams: 0 -> mean 5/12.
    # chrF++ adds words: unigrams 2/2 (1), bigram "ab cd" vs "cd ab": 0 -> mean (1 + 2/3 + 1) / 6 = 4/9.
    pair = {"predictions": ["ab cd"], "references": ["cd ab"]}
    assert compute("chrf", **pair)["score"] == pytest.approx(500 / 12)
    assert compute("chrf", **pair, word_order=2)["score"] == pytest.approx(400 / 9)


# --- BLEU ---------------------------------------------------------------------------------------------------------


def test_bleu_identical_and_brevity_penalty():
    same = compute("bleu", predictions=["le mode avion est activé"], references=["le mode avion est activé"])
    assert same["score"] == pytest.approx(100)
    assert same["precisions"] == pytest.approx([100] * 4) and same["brevity_penalty"] == 1.0
    # 4 hypothesis words, all n-grams match (precisions 100); reference has 6 words: BP = exp(1 - 6/4) = exp(-0.5).
    short = compute("bleu", predictions=["le forfait est actif"], references=["le forfait est actif ce mois"])
    assert short["precisions"] == pytest.approx([100] * 4)
    assert short["brevity_penalty"] == pytest.approx(0.6065306597)
    assert short["score"] == pytest.approx(60.65306597)
    assert (short["sys_len"], short["ref_len"]) == (4, 6)


def test_bleu_tokenizers():
    # 13a does not split the ASCII apostrophe ("l'option" is one token); intl splits punctuation: l ' option.
    pair = {"predictions": ["l'option est activée"], "references": ["l'option est activée"]}
    assert compute("bleu", **pair)["sys_len"] == 3
    assert compute("bleu", **pair, tokenize="intl")["sys_len"] == 5
    with pytest.raises(ValueError, match="unknown tokenize"):
        compute("bleu", **pair, tokenize="moses")


# --- ROUGE (French) -----------------------------------------------------------------------------------------------


def test_french_tokens():
    assert french_tokens("L’option d'itinérance qu'il a") == ["l", "option", "d", "itinérance", "qu", "il", "a"]
    assert french_tokens("19,99 € par mois, 2.5 Go en 4G") == ["19,99", "par", "mois", "2.5", "go", "en", "4g"]
    assert french_tokens("RE\u0301SEAU coupé, cœur ÇA") == ["réseau", "coupé", "cœur", "ça"]  # NFD input -> NFC
    assert french_tokens("Factures payées", stem=True) == ["factur", "pai"]  # Snowball: y -> i


def test_rouge_fr_hand_computed():
    # ref:  le réseau mobile est coupé à lyon (7 tokens); pred: à lyon le réseau est coupé (6 tokens).
    # ROUGE-L: LCS = "le réseau est coupé" = 4 -> P = 4/6, R = 4/7, F = 2PR / (P + R) = 8/13.
    # ROUGE-1: the 6 pred tokens are all in ref -> P = 1, R = 6/7, F = 12/13.
    # ROUGE-2: pred bigrams 5, ref bigrams 6, common {à lyon, le réseau, est coupé} = 3 -> P = 3/5, R = 1/2, F = 6/11.
    scores = compute(
        "rouge_fr", predictions=["À Lyon, le réseau est coupé."], references=["Le réseau mobile est coupé à Lyon"]
    )
    assert scores == pytest.approx({"rouge1": 12 / 13, "rouge2": 6 / 11, "rougeL": 8 / 13})


def test_rouge_fr_keeps_accents_where_rouge_score_default_drops_them():
    from rouge_score import rouge_scorer, tokenizers

    # rouge-score's default tokenizer keeps only [a-z0-9]: "été" and "ôté" both become "t", "à" vanishes.
    assert tokenizers.DefaultTokenizer().tokenize("Il a été coupé à Lyon") == ["il", "a", "t", "coup", "lyon"]
    default = rouge_scorer.RougeScorer(["rouge1"]).score("Il a ôté", "Il a été")["rouge1"].fmeasure
    assert default == 1.0  # two different words scored as identical
    assert compute("rouge_fr", predictions=["Il a été"], references=["Il a ôté"])["rouge1"] == pytest.approx(2 / 3)
    # Accented and unaccented spellings are different tokens.
    unaccented = compute("rouge_fr", predictions=["réseau coupé"], references=["reseau coupe"])
    assert unaccented == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_fr_stemmer_option_and_empty():
    pair = {"predictions": ["vos factures"], "references": ["votre facture"]}
    assert compute("rouge_fr", **pair)["rouge1"] == 0.0
    assert compute("rouge_fr", **pair, use_stemmer=True)["rouge1"] == pytest.approx(0.5)  # factur = factur
    assert compute("rouge_fr", predictions=[], references=[]) == {"rouge1": None, "rouge2": None, "rougeL": None}


# --- fact recall --------------------------------------------------------------------------------------------------


def test_fact_recall_is_accent_and_case_insensitive():
    # Accent-insensitive on purpose: customers and models drop accents ("abonne"), vary case and spacing.
    answers = [
        "Rendez-vous dans l'espace abonne, rubrique mes FACTURES.",  # 2 of 3 facts (no "3179")
        "Appelez le 3179 (gratuit) : 19.99€ par mois.",  # 2 of 2
        "Bonjour !",  # no expected fact: left out
    ]
    facts = [["Espace Abonné", "Mes Factures", "3179"], ["3179", "19,99 €"], []]
    result = compute("fact_recall", predictions=answers, references=facts)
    assert result == pytest.approx({"fact_recall": (2 / 3 + 1) / 2, "items_all_facts": 0.5, "items": 2})
    assert compute("fact_recall", predictions=["x"], references=[[]]) == {
        "fact_recall": None,
        "items_all_facts": None,
        "items": 0,
    }


def test_fact_recall_folding_matches_rag_compact():
    from rag.text import compact as rag_compact
    from training.metrics.fact_recall.fact_recall import compact

    for text in ["Espace Abonné", "19,99 €", "Œuvre À L’ÉTÉ", "n° 3179 !", "ﬁbre"]:
        assert compact(text) == rag_compact(text)


# --- escalation ---------------------------------------------------------------------------------------------------


def test_escalation_accuracy_five_items():
    # pred T T F F T / ref T F F T T: TP = 2 (items 1, 5), FP = 1 (item 2), FN = 1 (item 4), TN = 1 (item 3).
    # accuracy 3/5, precision 2/3, recall 2/3, F1 2/3.
    result = compute(
        "escalation_accuracy", predictions=[True, True, False, False, True], references=[True, False, False, True, True]
    )
    assert result == pytest.approx({"accuracy": 0.6, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})


def test_escalation_accuracy_without_positives():
    none = compute("escalation_accuracy", predictions=[False, False], references=[False, False])
    assert none == {"accuracy": 1.0, "precision": None, "recall": None, "f1": None}
    no_expected = compute("escalation_accuracy", predictions=[True, False], references=[False, False])
    assert no_expected == {"accuracy": 0.5, "precision": 0.0, "recall": None, "f1": None}
    all_wrong = compute("escalation_accuracy", predictions=[True, False], references=[False, True])
    assert all_wrong == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}


# --- latency ------------------------------------------------------------------------------------------------------


def test_latency_percentiles():
    # Linear interpolation on sorted [10, 20, 30, 40, 50]: p50 at rank 4 * 0.50 = 2 -> 30;
    # p95 at rank 4 * 0.95 = 3.8 -> 40 + 0.8 * (50 - 40) = 48.
    result = compute("latency", predictions=[50, 10, 40, 20, 30])
    assert result == pytest.approx({"p50": 30.0, "p95": 48.0, "mean": 30.0, "max": 50.0})
    with pytest.raises(ValueError, match="no latencies"):
        compute("latency", predictions=[])


# --- training.scoring ---------------------------------------------------------------------------------------------


def test_text_scores():
    text = "Votre facture de 19,99 € est disponible dans l'espace abonné."
    scores = text_scores([text, "Redémarrez le téléphone."], [text, "Redémarrez le téléphone."])
    assert scores == pytest.approx({"chrf": 100, "bleu": 100, "rougeL": 1, "rouge1": 1, "rouge2": 1})
    assert text_scores([], []) == {}
    with pytest.raises(ValueError, match="1 predictions for 2 references"):
        text_scores(["a"], ["a", "b"])


def test_load_metric_is_cached_and_checks_names():
    assert load_metric("chrf") is load_metric("chrf")
    assert sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file()) == sorted(METRICS)
    with pytest.raises(ValueError, match="unknown metric 'meteor'"):
        load_metric("meteor")


def run_python(code: str, tmp_path, **env: str) -> str:
    """Run `code` in a fresh interpreter at the repo root, with HF caches in tmp_path; returns stdout."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    full_env |= {"HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_scoring_import_is_light(tmp_path):
    code = "import sys, training.scoring; print([m for m in ('evaluate', 'datasets', 'sacrebleu') if m in sys.modules])"
    assert run_python(code, tmp_path).strip() == "[]"


def test_metrics_load_with_network_disabled(tmp_path):
    code = f"""
import json, socket
def blocked(*args, **kwargs):
    raise OSError("network disabled in this test")
socket.socket.connect = socket.create_connection = blocked
from training.scoring import load_metric
modules = [load_metric(name) for name in {METRICS!r}]
import evaluate.config
print(json.dumps({{"offline": evaluate.config.HF_EVALUATE_OFFLINE,
                  "chrf": load_metric("chrf").compute(predictions=["été"], references=["été"])["score"]}}))
"""
    out = json.loads(run_python(code, tmp_path, HF_HUB_OFFLINE="1").strip().splitlines()[-1])
    assert out == {"offline": True, "chrf": pytest.approx(100)}
