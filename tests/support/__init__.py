"""Helpers shared by the tests: fixtures' building blocks, fake upstreams, a throwaway Postgres."""
