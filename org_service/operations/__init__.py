"""Operator work on whole organizations: backup files, restore, inspection (org-service)."""
