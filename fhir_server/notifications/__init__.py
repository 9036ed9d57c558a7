"""Case notifications (issue #7): who is told what about a case, by email and optional SMS.

- ``texts.py``: what the emails and the SMS say (French first, then English), with no health
  data: a case reference and a link to the case only.
- ``recipients.py``: who receives them: the eligible doctors of a tier, the requesting
  pharmacist (or the pharmacy's other pharmacists), the owner doctor — through their accounts.
- ``case_mail.py``: the outbox consumers turning case events (``task-transition``,
  ``report-filed``, ``dmp-export-settled``) into sealed ``account-email`` events.
- ``sms.py``: the Twilio-compatible SMS API client.
- ``patient_sms.py``: the patient's mobile number and the ``patient-sms`` consumer sending the
  "your answer is available" SMS.
- ``wiring.py``: the consumers bound to a process's engine, accounts and settings.
"""
