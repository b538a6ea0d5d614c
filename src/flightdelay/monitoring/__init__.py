"""Monitoring of the prediction service: windows of its request log, thresholds, alerts, replay of real months."""
