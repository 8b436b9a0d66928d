"""French analyzer: folding, stop words, stemming, synonyms, amounts and typo correction."""

from __future__ import annotations

import pytest

from rag.text import STOPWORDS, QueryCorrector, analyze, compact, fold, stem, words


def test_fold_lowercases_and_strips_accents() -> None:
    assert fold("Résiliation ÉLEVÉE, ça coûte") == "resiliation elevee, ca coute"


def test_compact_keeps_only_ascii_alphanumerics() -> None:
    assert compact(" Mes  « Factures » – 12 mois ! ") == "mesfactures12mois"
    assert compact("Résilier-Mon_Forfait") == compact("resilier mon forfait")


def test_analyze_drops_stop_words_and_stems() -> None:
    tokens = analyze("Bonjour, je voudrais télécharger mes factures s'il vous plaît")
    assert "bonjour" not in tokens and "je" not in tokens and "mes" not in tokens
    assert stem("telecharger") in tokens
    assert stem("factures") in tokens
    assert all(t not in STOPWORDS for t in tokens if not t.startswith("grp_"))


def test_analyze_drops_single_letters_but_keeps_digits() -> None:
    assert analyze("l' a 5 g") == ["5"]


@pytest.mark.parametrize("variant", ["résilier", "resilier", "RÉSILIER", "Resilier"])
def test_accents_and_case_are_optional(variant: str) -> None:
    assert analyze(variant) == analyze("résilier")
    assert "grp_resil" in analyze(variant)


def test_elision_is_split() -> None:
    assert words("l’APN d'internet") == ["l", "apn", "d", "internet"]


def test_data_synonyms_share_a_group_token() -> None:
    assert "grp_data" in analyze("gigas")
    assert "grp_data" in analyze("data")
    assert "grp_data" in analyze("plus de Go")


def test_payment_synonyms_share_a_group_token() -> None:
    rib = analyze("changer mon RIB")
    card = analyze("changer ma carte bancaire")
    assert "grp_paiement" in rib and "grp_paiement" in card
    assert "cb" in card  # the phrase became a single token
    assert analyze("mon mode de règlement") == analyze("mon moyen de paiement")  # the formal wording is the same thing


def test_phrases_become_single_tokens() -> None:
    assert "grp_porta" in analyze("je veux garder mon numéro")
    assert analyze("mode avion") == [stem("modeavion")]


@pytest.mark.parametrize("amount", ["2€", "2 €", "2 euros", "2e", "2 eur", "2euros"])
def test_euro_amounts_are_normalised(amount: str) -> None:
    assert analyze(f"forfait {amount}") == analyze("forfait 2 euros")
    assert analyze(amount) == ["2", "euro"]


def test_decimal_amount_keeps_its_comma() -> None:
    assert analyze("19,99 €") == ["19,99", "euro"]


def test_ordinal_is_not_an_amount() -> None:
    assert "euro" not in analyze("2eme fois")


class TestQueryCorrector:
    @pytest.fixture
    def corrector(self) -> QueryCorrector:
        return QueryCorrector(analyze("facture télécharger réseau forfait résilier data"))

    def test_group_tokens_are_not_vocabulary(self, corrector: QueryCorrector) -> None:
        assert not any(v.startswith("grp_") for v in corrector.vocabulary)

    def test_typo_is_corrected_to_a_known_token(self, corrector: QueryCorrector) -> None:
        assert corrector.correct(analyze("facure")) == [stem("facture")]
        assert corrector.correct(analyze("resiler")) == [stem("resilier")]

    def test_known_short_numeric_and_group_tokens_are_kept(self, corrector: QueryCorrector) -> None:
        tokens = [stem("facture"), "rzo", "2024", "grp_data"]
        assert corrector.correct(tokens) == tokens

    def test_unrelated_word_is_left_alone(self, corrector: QueryCorrector) -> None:
        assert corrector.correct(["meteo"]) == ["meteo"]


def test_cities_abroad_and_phone_shorthand_are_understood() -> None:
    from rag.retriever import facets_of
    from rag.text import analyze

    assert "abroad" in facets_of("Je pars à Rome le mois prochain, j'aurai combien de data ?")
    assert "grp_roaming" in analyze("en week-end à Londres")
    assert analyze("chgt de cb") == analyze("changement de cb")
    assert analyze("c ou dans lespace abonne") == analyze("c ou dans l'espace abonne")


def test_android_s_access_point_is_the_apn_but_the_hotspot_is_not() -> None:
    assert "apn" in analyze("les paramètres du point d'accès")
    assert "apn" in analyze("Noms des points d'accès")
    assert "apn" not in analyze("activer le point d'accès mobile")


def test_ways_of_reaching_the_service_share_a_group_token() -> None:
    assert "grp_contact" in analyze("comment vous écrire ?") and "grp_contact" in analyze("contacter l'assistance")
