from enum import StrEnum


class Scope(StrEnum):
    INTEGRATION_API = "INTEGRATION_API"
    ASSISTANT_API = "ASSISTANT_API"
