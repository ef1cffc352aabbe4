"""The long-running loops (RUNTIME.md, "Processes"): they never import FastAPI, so that a worker
process carries no web framework and the API can embed them unchanged."""
