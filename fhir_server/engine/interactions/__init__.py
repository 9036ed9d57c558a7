"""One module per FHIR RESTful interaction family (https://hl7.org/fhir/R4/http.html)."""
