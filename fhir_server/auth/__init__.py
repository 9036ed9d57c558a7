"""SMART on FHIR authorization: scopes, and the pieces of the authorization server built on them."""
