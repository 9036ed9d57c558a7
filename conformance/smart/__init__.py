"""What the kit's ``smart`` group needs to act as a SMART app and a backend client: its options,
PKCE, signed client assertions, ID token checks, the sign-in form, and the checks themselves."""
