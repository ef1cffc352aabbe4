"""The database: one engine factory, the tables, the shared SQL rules, and migrations."""
