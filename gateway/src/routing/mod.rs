//! Routing (being built): route rules, decisions, versions with four-eyes approval.
