"""Contact form validation: French mobile numbers to E.164, names, e-mails, grouped errors."""

from __future__ import annotations

import pytest

from rag.contact import Contact, ContactError, normalize_mobile, validate_contact


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0612345678", "+33612345678"),
        ("06 12 34 56 78", "+33612345678"),
        ("07.12.34.56.78", "+33712345678"),
        ("06-12-34-56-78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+33612345678", "+33612345678"),
        ("0033 6 12 34 56 78", "+33612345678"),
        ("0033712345678", "+33712345678"),
        ("+33 (0)6 12 34 56 78", "+33612345678"),
        (" 06 12 34 56 78 ", "+33612345678"),
    ],
)
def test_french_mobile_forms_normalise_to_e164(raw: str, e164: str) -> None:
    assert normalize_mobile(raw) == e164
    assert validate_contact("Jean Dupont", raw).phone == e164


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("01 23 45 67 89", "commençant par 06 ou 07"),
        ("+44 7911 123456", "commençant par 06 ou 07"),
        ("+1 415 555 0100", "commençant par 06 ou 07"),
        ("06 12 34", "Numéro incomplet"),
        ("06 12 34 56 7", "Numéro incomplet"),
        ("06 12 34 56 78 9", "trop long"),
        ("06 AB 34 56 78", "que des chiffres"),
    ],
)
def test_invalid_phone_gives_a_french_error_on_the_phone_field(raw: str, message: str) -> None:
    with pytest.raises(ContactError) as excinfo:
        validate_contact("Jean Dupont", raw)
    assert excinfo.value.errors.keys() == {"phone"}
    assert message in excinfo.value.errors["phone"]


def test_valid_contact_is_normalised() -> None:
    contact = validate_contact("  Jean-Pierre   d’Arc ", "06 12 34 56 78", " Jean.Dupont@Exemple.FR ")
    assert contact == Contact("Jean-Pierre d’Arc", "+33612345678", "Jean.Dupont@exemple.fr")
    assert validate_contact("Zoé", "0712345678", "").email is None


@pytest.mark.parametrize("email", ["pas-un-mail", "jean@@exemple.fr", "jean@exemple"])
def test_bad_email(email: str) -> None:
    with pytest.raises(ContactError) as excinfo:
        validate_contact("Jean Dupont", "0612345678", email)
    assert excinfo.value.errors == {"email": "L'adresse e-mail n'est pas valide (ex. : prenom.nom@exemple.fr)."}


def test_empty_name() -> None:
    with pytest.raises(ContactError) as excinfo:
        validate_contact("   ", "0612345678")
    assert excinfo.value.errors == {"full_name": "Merci d'indiquer votre nom complet."}


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "J", "Jean 2", "R2-D2", "x" * 101])
def test_invalid_name(name: str) -> None:
    with pytest.raises(ContactError) as excinfo:
        validate_contact(name, "0612345678")
    assert excinfo.value.errors.keys() == {"full_name"}
    assert "lettres" in excinfo.value.errors["full_name"]


def test_every_error_is_reported_together() -> None:
    with pytest.raises(ContactError) as excinfo:
        validate_contact("<script>", "", "nope")
    errors = excinfo.value.errors
    assert errors.keys() == {"full_name", "phone", "email"}
    assert errors["phone"] == "Merci d'indiquer votre numéro de mobile."
    assert all(message in str(excinfo.value) for message in errors.values())
