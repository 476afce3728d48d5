"""The queries behind the read side: the read API (/api/v1) and the dashboard both use them.

Each function takes an open connection and returns rows or plain values; presenting them
(JSON, HTML) is the caller's business. Statements lean on the tables' indexes: a month of
50,000 decisions is read a page at a time (bench/pages.py).
"""
