"""Contracts: event models, database tables and settings. Imports no other project folder."""
