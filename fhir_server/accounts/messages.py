"""What the account service says when it refuses, in French and in English (one ``Text`` each,
so that the two languages cannot drift apart)."""

from __future__ import annotations

from typing import Final

from fhir_server.validation.messages import Text

INVALID_CREDENTIALS: Final = Text(
    en="The email address or the password is wrong.",
    fr="L'adresse e-mail ou le mot de passe est incorrect.")
LOCKED: Final = Text(
    en="Too many failed sign-ins: try again in {minutes} minute(s).",
    fr="Trop d'échecs de connexion : réessayez dans {minutes} minute(s).")
TOO_MANY_REQUESTS: Final = Text(
    en="Too many requests: try again in {minutes} minute(s).",
    fr="Trop de demandes : réessayez dans {minutes} minute(s).")
UNVERIFIED: Final = Text(
    en="Confirm your email address first: open the link we emailed you.",
    fr="Confirmez d'abord votre adresse e-mail : ouvrez le lien que nous vous avons envoyé.")
SUSPENDED: Final = Text(
    en="Your account is suspended until {until}.",
    fr="Votre compte est suspendu jusqu'au {until}.")
TERMINATED: Final = Text(
    en="This account is closed.",
    fr="Ce compte est clôturé.")
DELETION_REQUESTED: Final = Text(
    en="This account is being deleted, as you asked.",
    fr="Ce compte est en cours de suppression, à votre demande.")
INVALID_EMAIL: Final = Text(
    en="The email address is not valid.",
    fr="L'adresse e-mail n'est pas valide.")
EMAIL_TAKEN: Final = Text(
    en="An account with this email address exists already.",
    fr="Un compte existe déjà avec cette adresse e-mail.")
RPPS_TAKEN: Final = Text(
    en="An account exists already for this RPPS number.",
    fr="Un compte existe déjà pour ce numéro RPPS.")
NAME_REQUIRED: Final = Text(
    en="The family name is required.",
    fr="Le nom de famille est obligatoire.")
RPPS_REQUIRED: Final = Text(
    en="A doctor registers with an RPPS number.",
    fr="Un médecin s'inscrit avec son numéro RPPS.")
FINESS_REQUIRED: Final = Text(
    en="A pharmacist registers with the pharmacy's FINESS number.",
    fr="Un pharmacien s'inscrit avec le numéro FINESS de sa pharmacie.")
NOT_FOR_ROLE: Final = Text(
    en="{option} does not apply to the role {role}.",
    fr="{option} ne s'applique pas au rôle {role}.")
UNKNOWN_ROLE: Final = Text(
    en="Unknown role {role}: expected one of {roles}.",
    fr="Rôle inconnu, {role} : valeurs attendues {roles}.")
INVALID_TOKEN: Final = Text(
    en="This link is not valid: it is unknown, expired or already used.",
    fr="Ce lien n'est pas valide : il est inconnu, expiré ou déjà utilisé.")
NOT_FOUND: Final = Text(
    en="No such account.",
    fr="Ce compte n'existe pas.")
CLOSED: Final = Text(
    en="This account is closed or being deleted: it cannot change any more.",
    fr="Ce compte est clôturé ou en cours de suppression : il ne peut plus changer.")
CANNOT_SUSPEND: Final = Text(
    en="Only an active or suspended account can be suspended (this one is {state}).",
    fr="Seul un compte actif ou suspendu peut être suspendu (celui-ci : {state}).")
ALREADY_TERMINATED: Final = Text(
    en="This account is already closed.",
    fr="Ce compte est déjà clôturé.")
SUSPENSION_NOT_IN_FUTURE: Final = Text(
    en="The end of a suspension must be in the future.",
    fr="La fin d'une suspension doit être dans le futur.")
REASON_REQUIRED: Final = Text(
    en="A reason is required: it is sent to the account's owner.",
    fr="Un motif est obligatoire : il est envoyé au titulaire du compte.")
NOT_A_DOCTOR: Final = Text(
    en="This account is not a doctor's.",
    fr="Ce compte n'est pas celui d'un médecin.")
MEDICAL_DIRECTOR_ONLY: Final = Text(
    en="Only a medical director verifies doctors.",
    fr="Seul un directeur médical vérifie les médecins.")
BUSY: Final = Text(
    en="The account kept changing while this request ran: try again.",
    fr="Le compte a changé pendant le traitement de la demande : réessayez.")
