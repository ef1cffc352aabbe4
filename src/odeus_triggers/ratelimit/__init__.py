"""Rate limits: the policies, the counter (Redis or in process), and their response headers.

The edge middleware that decides whom a request is charged to lives in `edge/rate_limit.py`.
"""
