"""The FHIR engine: interactions over a Store, independent of HTTP and of any one database."""
