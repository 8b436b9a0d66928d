"""Customer contact form: validation with clear French messages, nothing stored until valid."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

_NAME_RE = re.compile(r"^[^\W\d_]+(?:[ '’\-.][^\W\d_]+)*\.?$")


class ContactError(ValueError):
    """Invalid contact form; `errors` maps each field to a French message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Contact:
    """A validated contact: name trimmed, phone in E.164 (+33...), email normalised or None."""

    full_name: str
    phone: str
    email: str | None = None


def normalize_mobile(raw: str) -> str:
    """French mobile number in any common form (06/07, +33, 0033, spaces, dots) -> +336XXXXXXXX."""
    cleaned = re.sub(r"[\s.\-()/]", "", raw or "")
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if not re.fullmatch(r"\+?\d+", cleaned):
        raise ValueError("Le numéro de mobile ne doit contenir que des chiffres (ex. : 06 12 34 56 78).")
    if not 9 <= len(cleaned.lstrip("+")) <= 15:
        raise ValueError("Numéro incomplet : 10 chiffres sont attendus (ex. : 06 12 34 56 78).")
    try:
        number = phonenumbers.parse(cleaned, "FR")
    except phonenumbers.NumberParseException as exc:
        raise ValueError("Numéro de mobile invalide (ex. : 06 12 34 56 78 ou +33 6 12 34 56 78).") from exc
    national = str(number.national_number)
    if number.country_code == 33 and national[:1] in ("6", "7") and len(national) != 9:
        # "06 12 34 56 7" is a French mobile with a digit missing, not a foreign number
        raise ValueError(
            "Numéro incomplet : 10 chiffres sont attendus (ex. : 06 12 34 56 78)."
            if len(national) < 9
            else "Numéro trop long : 10 chiffres sont attendus (ex. : 06 12 34 56 78)."
        )
    if number.country_code != 33 or len(national) != 9 or national[0] not in "67":
        raise ValueError("Merci d'indiquer un numéro de mobile français commençant par 06 ou 07.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_contact(full_name: str, phone: str, email: str | None = None) -> Contact:
    """Validate the three fields together so the customer sees every problem at once."""
    errors: dict[str, str] = {}
    name = re.sub(r"\s+", " ", (full_name or "").strip())
    if not name:
        errors["full_name"] = "Merci d'indiquer votre nom complet."
    elif len(name) < 2 or len(name) > 100 or not _NAME_RE.match(name):
        errors["full_name"] = "Le nom ne doit contenir que des lettres, espaces, apostrophes ou tirets (2 à 100 caractères)."
    normalized_phone = ""
    if not (phone or "").strip():
        errors["phone"] = "Merci d'indiquer votre numéro de mobile."
    else:
        try:
            normalized_phone = normalize_mobile(phone)
        except ValueError as exc:
            errors["phone"] = str(exc)
    normalized_email = None
    if email and email.strip():
        try:
            normalized_email = validate_email(email.strip(), check_deliverability=False).normalized
        except EmailNotValidError:
            errors["email"] = "L'adresse e-mail n'est pas valide (ex. : prenom.nom@exemple.fr)."
    if errors:
        raise ContactError(errors)
    return Contact(name, normalized_phone, normalized_email)
