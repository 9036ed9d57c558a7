"""What case notifications say: the emails to doctors and pharmacists and the SMS to the patient,
French first, then English, like the account emails (``accounts.mail.letter``).

No health data ever: an email names the case by its reference (the Task id) and links to it
(``<app_base_url>/cases/<id>``, else ``<FHIR base>/Task/<id>``, else no link); it never carries
the patient's name or identifier, the lesion, the question or the answer. The SMS names the
pharmacy at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fhir_server.accounts.mail import AccountEmail, letter
from fhir_server.settings import Settings

APP_CASE_PATH: Final = "/cases/"


@dataclass(frozen=True, slots=True)
class CaseRef:
    """How a message names a case: its reference and, when a base URL is known, a link."""

    reference: str
    link: str | None = None

    @property
    def where_fr(self) -> str:
        """Where to look, ending a French sentence."""
        return f" : {self.link}" if self.link else " dans Pictaderm."

    @property
    def where_en(self) -> str:
        """Where to look, ending an English sentence."""
        return f": {self.link}" if self.link else " in Pictaderm."


def case_ref(settings: Settings, task_id: str) -> CaseRef:
    """The case of ``Task/<task_id>``: the web application's page of the case when
    ``app_base_url`` is set, else the Task on the public FHIR base (``base_url``), else no link."""
    if settings.app_base_url:
        return CaseRef(task_id, settings.app_base_url.rstrip("/") + APP_CASE_PATH + task_id)
    if settings.base_url:
        return CaseRef(task_id, f"{settings.base_url.rstrip('/')}/Task/{task_id}")
    return CaseRef(task_id)


def case_offered_email(to: str, case: CaseRef) -> AccountEmail:
    """To a doctor of the tier a case is offered to."""
    return letter(
        to, "case-offered",
        subject=("nouvelle demande de téléexpertise", "new tele-expertise request"),
        french=(f"Une demande de téléexpertise vous est proposée (dossier {case.reference}). "
                "Le premier médecin qui la prend en charge la traite. Pour la consulter, "
                f"connectez-vous{case.where_fr}"),
        english=(f"A tele-expertise request is offered to you (case {case.reference}). The "
                 "first doctor to claim it handles it. To read it, sign in"
                 f"{case.where_en}"))


def clarification_requested_email(to: str, case: CaseRef) -> AccountEmail:
    """To the requesting pharmacist: the doctor asked a question."""
    return letter(
        to, "clarification-requested",
        subject=("le médecin demande une précision", "the doctor asks for more information"),
        french=(f"Le médecin qui traite le dossier {case.reference} a besoin d'une précision. "
                "Lisez sa question, complétez la demande puis renvoyez-la"
                f"{case.where_fr}"),
        english=(f"The doctor handling case {case.reference} needs more information. Read "
                 f"the question, complete the request and send it again{case.where_en}"))


def report_ready_email(to: str, case: CaseRef) -> AccountEmail:
    """To the requesting pharmacist: the report is filed."""
    return letter(
        to, "report-ready", subject=("compte rendu disponible", "report available"),
        french=(f"Le compte rendu du dossier {case.reference} est disponible. Remettez-le au "
                f"patient{case.where_fr}"),
        english=(f"The report of case {case.reference} is available. Hand it to the patient"
                 f"{case.where_en}"))


def case_failed_email(to: str, case: CaseRef) -> AccountEmail:
    """To the requesting pharmacist: no doctor of any tier took the case in time."""
    return letter(
        to, "case-failed",
        subject=("demande restée sans réponse", "request left unanswered"),
        french=(f"Aucun médecin n'a pu prendre en charge le dossier {case.reference} dans les "
                "délais : la demande est close sans réponse. Orientez le patient vers une autre "
                f"prise en charge{case.where_fr}"),
        english=(f"No doctor could take case {case.reference} in time: the request is closed "
                 f"without an answer. Refer the patient elsewhere{case.where_en}"))


def case_cancelled_email(to: str, case: CaseRef, *, doctor: bool) -> AccountEmail:
    """To the requesting pharmacist, and to the doctor who had claimed the case (``doctor``)."""
    if doctor:
        french = (f"La pharmacie a annulé le dossier {case.reference} que vous aviez pris en "
                  f"charge : aucune réponse n'est plus attendue{case.where_fr}")
        english = (f"The pharmacy cancelled case {case.reference}, which you had claimed: no "
                   f"answer is expected any more{case.where_en}")
    else:
        french = f"Le dossier {case.reference} est annulé{case.where_fr}"
        english = f"Case {case.reference} is cancelled{case.where_en}"
    return letter(to, "case-cancelled", subject=("demande annulée", "request cancelled"),
                  french=french, english=english)


def file_in_dmp_yourself_email(to: str, case: CaseRef) -> AccountEmail:
    """To the requesting pharmacist: the report could not go to the patient's DMP."""
    return letter(
        to, "dmp-not-sent",
        subject=("compte rendu à déposer dans le DMP", "report to file in the DMP"),
        french=(f"Le compte rendu du dossier {case.reference} n'a pas pu être envoyé au "
                "Dossier Médical Partagé (DMP) du patient. Déposez-le vous-même dans son DMP"
                f"{case.where_fr}"),
        english=(f"The report of case {case.reference} could not be sent to the patient's "
                 "shared medical record (DMP). File it in the DMP yourself"
                 f"{case.where_en}"))


def report_ready_sms(pharmacy: str | None) -> str:
    """The SMS to the patient: the answer waits at the pharmacy (named when known)."""
    if pharmacy:
        return (f"Pictaderm : la réponse à votre demande est disponible auprès de : {pharmacy}. "
                f"/ Your answer is available at: {pharmacy}.")
    return ("Pictaderm : la réponse à votre demande est disponible à votre pharmacie. "
            "/ Your answer is available at your pharmacy.")
