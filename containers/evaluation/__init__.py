"""Evaluation: checks on models and data, the evaluation report, slices and infra-validation results."""
