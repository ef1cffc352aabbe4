"""Outbound HTTP that cannot reach private networks: the address guard, shared by the sandbox's
`fetch` and webhook delivery."""
