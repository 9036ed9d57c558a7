"""The XDS.b route toward the DMP: an IHE ITI-41 Provide and Register Document Set-b request
(ebRIM metadata, a VIHF SAML assertion, a XAdES-signed submission set, SOAP 1.2 over MTOM).

``adapter.xds_adapter(settings)`` is the entry point; the other modules are pure builders and
parsers. What is and is not verified against the real DMP: ``docs/implementation/dmp-xds.md``.
"""
