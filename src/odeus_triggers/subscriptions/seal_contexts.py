"""The contexts that seal a subscription's secrets to their row (`secretbox`). Apart from the
service, so that the poll path (and the worker process) does not import the API's layers."""

import uuid


def secret_context(subscription_id: uuid.UUID, name: str) -> str:
    return f"subscription-secret:{subscription_id}:{name}"


def signing_context(subscription_id: uuid.UUID) -> str:
    # The previous secret too: a rotation moves the sealed token from one column to the other as it is.
    return f"signing-secret:{subscription_id}"
