//! Authentication (being built): JWT verification against a JWKS, scopes, dev tokens.
