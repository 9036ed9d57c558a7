"""The report of a completed case: filed as PDF, DocumentReference and Task output."""
