"""Canned replies agents can insert in the reply box; every fact comes from the knowledge base."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CannedReply:
    """A ready-made French answer; ``{greeting}`` becomes "Bonjour <prénom>," when the name is known."""

    key: str
    title: str
    text: str

    def render(self, first_name: str | None = None) -> str:
        """The reply text addressed to the customer."""
        greeting = f"Bonjour {first_name}," if first_name else "Bonjour,"
        return self.text.format(greeting=greeting)


CANNED_REPLIES: tuple[CannedReply, ...] = (
    CannedReply(
        "ack",
        "Accusé de réception",
        "{greeting} je suis votre conseiller Free Mobile. J'ai bien reçu votre demande et je la prends en "
        "charge : je reviens vers vous dans cette conversation dès que possible.",
    ),
    CannedReply(
        "rio",
        "Code RIO / portabilité",
        "{greeting} pour conserver votre numéro chez un autre opérateur, appelez le 3179 (appel gratuit) "
        "depuis votre mobile Free : votre code RIO vous est envoyé par SMS ; il figure aussi dans votre "
        "Espace Abonné et reste valable 4 mois. Donnez-le à votre nouvel opérateur sans résilier votre "
        "forfait au préalable : la résiliation est automatique au moment du transfert, sous 1 à 3 jours ouvrés.",
    ),
    CannedReply(
        "apn",
        "Paramètres APN",
        "{greeting} voici les paramètres APN à saisir sur votre téléphone : nom Free, APN free, "
        "MMSC http://mms.free.fr, MCC 208, MNC 15, type d'APN default,supl,mms ; laissez les autres champs "
        "vides, puis redémarrez votre téléphone.",
    ),
    CannedReply(
        "network",
        "Plus de réseau",
        "{greeting} vérifiez que le mode avion est désactivé, redémarrez votre téléphone, puis retirez et "
        "réinsérez votre carte SIM en vous assurant qu'elle est bien en place. Vous pouvez aussi consulter la "
        "carte de couverture sur mobile.free.fr. Dites-moi si le problème persiste.",
    ),
    CannedReply(
        "invoice-dispute",
        "Contestation de facture",
        "{greeting} pour contester une facture, rendez-vous dans Assistance > Nous contacter > Facturation > "
        "Contestation de facture en précisant le détail de votre demande. Une réponse vous est apportée sous "
        "10 jours ouvrés ; la facture reste à régler en attendant.",
    ),
    CannedReply(
        "payment",
        "Changer de moyen de paiement",
        "{greeting} vous pouvez changer de moyen de paiement dans votre Espace Abonné (mobile.free.fr) : "
        "Mon compte > Moyen de paiement > Modifier. Le changement s'applique à partir de la prochaine facture.",
    ),
    CannedReply(
        "closing",
        "Clôture",
        "{greeting} votre demande est traitée, je la marque comme résolue. Vous pourrez noter notre service "
        "juste en dessous. Bonne journée !",
    ),
)
_BY_KEY = {reply.key: reply for reply in CANNED_REPLIES}


def canned_reply(key: str, first_name: str | None = None) -> str:
    """The text of the canned reply ``key`` (KeyError if unknown)."""
    return _BY_KEY[key].render(first_name)
