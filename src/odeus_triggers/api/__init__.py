"""What routers use, and no domain: bases, dependencies, parameters, bodies, OpenAPI, docs."""
