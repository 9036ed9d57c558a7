"""The server's configuration: one settings object read from ``FHIR_SERVER_*`` variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every setting has an environment variable ``FHIR_SERVER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FHIR_SERVER_", extra="ignore")

    mode: Mode = Mode.DEVELOPMENT
    data_dir: Path = Field(default=Path("fhir-data"),
                           description="Where the embedded store, keys and local queue live.")
    store: str | None = Field(
        default=None,
        description="Storage URL: unset or sqlite:///path for the embedded SQLite store, "
                    "mongodb://… for MongoDB (a replica set).")
    mongo_database: str = "fhir"
    broker: str | None = Field(
        default=None,
        description="Celery broker URL (redis://…). Unset: outbox events run in-process.")
    base_url: str | None = Field(
        default=None, description="Public base URL of the FHIR API, e.g. https://x/fhir; "
                                  "unset: derived from each request.")
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Base64 of 32 random bytes: AES-256-GCM key for data at rest. Required in "
                    "production; in development a key file is created under the data dir.")
    api_token: SecretStr | None = Field(
        default=None,
        description="The operator's bearer token (full access, beside SMART access tokens); "
                    "in development one is generated under the data dir when unset.")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, description="Largest request body.")
    sqlite_synchronous: str = Field(
        default="NORMAL",
        description="SQLite synchronous pragma in WAL mode: NORMAL survives a process crash; "
                    "FULL also survives power loss, at a cost per commit.")
    sqlite_readers: int = Field(default=4, description="Read connections to the SQLite file.")
    outbox_poll_seconds: float = Field(default=0.5, description="Outbox dispatcher poll period.")
    outbox_dispatch: bool = Field(default=True,
                                  description="Run the outbox dispatcher inside the API process.")
    change_events: bool | None = Field(
        default=None,
        description="Record a resource-changed outbox event with every write: true, false, or "
                    "unset = only when a consumer of that topic is registered.")
    validation_mode: Literal["reject", "tag"] = Field(
        default="reject",
        description="What a write with validation errors gets: reject = refused with 422; "
                    "tag = stored with the meta.tag validation-status#invalid (structure "
                    "errors are refused in both modes).")
    smtp_url: str | None = Field(
        default=None,
        description="Where account emails go: smtp://host:port or smtps://user:password@host:port; "
                    "unset: written as .eml files under <data dir>/mail (development).")
    mail_from: str = Field(default="Pictaderm <no-reply@pictaderm.localhost>",
                           description="The From address of account emails.")
    login_max_failures: int = Field(
        default=5, description="Failed sign-ins (per account, and per address) within the "
                               "failure window before a temporary lock-out.")
    login_failure_window_seconds: int = Field(
        default=900, description="How long a failed sign-in counts toward the lock-out.")
    login_lockout_seconds: int = Field(default=900,
                                       description="How long a lock-out lasts.")
    email_verification_seconds: int = Field(
        default=48 * 3600, description="Lifetime of an email verification link.")
    password_reset_seconds: int = Field(
        default=3600, description="Lifetime of a single-use password reset link.")
    oidc_signing_key: SecretStr | None = Field(
        default=None,
        description="PEM of the RSA private key that signs ID tokens (RS256). Required in "
                    "production; in development a key file is created under the data dir.")
    authorization_code_seconds: int = Field(
        default=60, description="Lifetime of an authorization code (single use).")
    app_access_token_seconds: int = Field(
        default=3600, description="Lifetime of an access token issued to an app (backend "
                                  "service tokens live at most 300 s).")
    refresh_token_seconds: int = Field(
        default=30 * 24 * 3600, description="Lifetime of a refresh token (rotated at each use).")
    psc_issuer: str | None = Field(
        default=None,
        description="Pro Santé Connect issuer URL (its /.well-known/openid-configuration is "
                    "read); unset: the PSC sign-in button is not offered.")
    psc_client_id: str | None = Field(default=None,
                                      description="Our client id registered at Pro Santé Connect.")
    psc_client_secret: SecretStr | None = Field(
        default=None, description="Our client secret at Pro Santé Connect.")
    psc_discovery_url: str | None = Field(
        default=None,
        description="Pro Santé Connect's discovery document, when not "
                    "<issuer>/.well-known/openid-configuration (production PSC publishes "
                    "<issuer>/.well-known/wallet-openid-configuration).")
    tier1_deadline_minutes: int = Field(
        default=240, description="How long a case offered to tier 1 waits for a claim before "
                                 "it moves to tier 2.")
    tier2_deadline_minutes: int = Field(
        default=480, description="How long a case offered to tier 2 waits before tier 3.")
    tier3_deadline_minutes: int = Field(
        default=1440, description="How long a case offered to tier 3 waits before it fails.")
    routing_sweep_seconds: float = Field(
        default=60.0, description="How often the API process looks for cases past their tier "
                                  "deadline (0: never, e.g. when another process does).")
    subscription_max_failures: int = Field(
        default=5, description="Consecutive failed notifications before a Subscription goes to "
                               "status error.")
    subscription_retry_base_seconds: float = Field(
        default=30.0, description="Wait before the first retry of a failed notification "
                                  "(doubling at each failure).")
    subscription_retry_max_seconds: float = Field(
        default=1800.0, description="Longest wait between two tries of a notification.")
    subscription_timeout_seconds: float = Field(
        default=10.0, description="How long a subscriber's endpoint may take to answer.")
    # --- the report, the DMP export, photos and notifications (issue #7) -------------------
    platform_name: str = Field(default="Pictaderm",
                               description="The platform's name on reports and documents.")
    document_oid_root: str = Field(
        default="2.25",
        description="OID arc under which report documents get their unique id (CDA id@root, "
                    "DocumentReference.masterIdentifier, XDS uniqueId). The default 2.25 "
                    "makes an OID from a UUID (ITU-T X.667), needing no registration; a "
                    "registered root of the operator's can replace it.")
    document_class_code: str = Field(
        default="10",
        description="The report's document class (TRE_A03-ClasseDocument) in the DMP "
                    "metadata; 10 'Compte rendu' is unverified for LOINC 85208-7.")
    dmp_export: Literal["off", "mhd", "xds"] = Field(
        default="off",
        description="How completed reports go toward the DMP: off, mhd (IHE MHD ITI-65 to "
                    "dmp_mhd_url, ANS PDSm) or xds (XDS.b ITI-41 SOAP to dmp_xds_url).")
    dmp_mhd_url: str | None = Field(
        default=None, description="FHIR base URL of the MHD Document Recipient (ITI-65).")
    dmp_mhd_token: SecretStr | None = Field(
        default=None, description="Bearer token sent to the MHD Document Recipient.")
    dmp_xds_url: str | None = Field(
        default=None, description="The XDS.b Document Repository's ProvideAndRegister "
                                  "(ITI-41) endpoint.")
    dmp_signing_key: SecretStr | None = Field(
        default=None, description="PEM of the private key signing the VIHF assertion and the "
                                  "XAdES signature of XDS submissions.")
    dmp_signing_certificate: str | None = Field(
        default=None, description="PEM of the certificate of dmp_signing_key.")
    dmp_structure_id: str | None = Field(
        default=None, description="The platform's national structure id (idNST) named in the "
                                  "VIHF assertion and as the documents' custodian.")
    dmp_max_attempts: int = Field(
        default=8, description="Tries of a DMP submission before it is marked dmp-failed.")
    dmp_retry_base_seconds: float = Field(
        default=60.0, description="Wait before the first retry of a DMP submission (doubling).")
    dmp_retry_max_seconds: float = Field(
        default=3600.0, description="Longest wait between two tries of a DMP submission.")
    dmp_timeout_seconds: float = Field(
        default=30.0, description="How long the DMP endpoint may take to answer.")
    max_image_bytes: int = Field(default=20 * 1024 * 1024,
                                 description="Largest photo or DICOM instance accepted.")
    max_image_pixels: int = Field(
        default=50_000_000,
        description="Largest photo in pixels (width × height): guards against decompression "
                    "bombs.")
    app_base_url: str | None = Field(
        default=None,
        description="Base URL of the web application that notification emails link to "
                    "(…/cases/<Task id>); unset: the FHIR base URL.")
    sms_url: str | None = Field(
        default=None,
        description="Base URL of a Twilio-compatible SMS API (https://api.twilio.com); unset: "
                    "no SMS is sent.")
    sms_account_sid: str | None = Field(default=None, description="SMS API account SID.")
    sms_auth_token: SecretStr | None = Field(default=None, description="SMS API auth token.")
    sms_from: str | None = Field(default=None, description="Sender number or name of SMS.")
    notification_timeout_seconds: float = Field(
        default=10.0, description="How long the SMS API may take to answer.")
    default_page_size: int = 20
    max_page_size: int = 1000
    max_offset: int = 10_000
    log_level: str = "info"

    def resolved_store_url(self) -> str:
        """The storage URL, defaulting to the SQLite file under the data dir."""
        if self.store:
            return self.store
        return f"sqlite:///{(self.data_dir / 'fhir.sqlite3').resolve()}"
