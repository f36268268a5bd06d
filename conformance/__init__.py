"""Conformance suites for QA: test any central system or charger against the public OCTT catalogue."""
