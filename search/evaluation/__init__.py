"""Offline retrieval evaluation (`shoplens eval`): query builders, TREC files, metrics, runner and reports."""
