"""Locust load tests for OCPP central systems."""
