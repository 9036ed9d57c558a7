"""User accounts: registration, email verification, password reset, sign-in throttling,
administrators' sanctions and doctors' verification, emailed through the outbox.

``AccountService`` (``service.py``) implements ``fhir_server.auth.users.UserDirectory``. The
records live in an ``AccountStore`` beside the auth store (``sqlite_accounts.py``,
``mongo_accounts.py``); the FHIR records (Practitioner, PractitionerRole, the pharmacy) are
written through the engine (``directory.py``); emails go through the outbox (``mail.py``).
"""

from fhir_server.accounts.directory import PractitionerDirectory
from fhir_server.accounts.mail import AccountMailer, mail_consumers, mailer_for
from fhir_server.accounts.model import Account, AccountError, AccountStatus
from fhir_server.accounts.passwords import Passwords
from fhir_server.accounts.service import AccountService, NewUser, Registration
from fhir_server.accounts.store import AccountStore, open_account_store

__all__ = [
    "Account",
    "AccountError",
    "AccountMailer",
    "AccountService",
    "AccountStatus",
    "AccountStore",
    "NewUser",
    "Passwords",
    "PractitionerDirectory",
    "Registration",
    "mail_consumers",
    "mailer_for",
    "open_account_store",
]
