"""Contracts: event models, database tables, stored task results and settings. Imports no other project folder."""
