"""The HTTP/2 client connection preface (RFC 9113 §3.4), apart from
gateway/http/h2_session.py so that an HTTP/1.1 connection can look for it without
importing h2.

Rules:
1. This module imports nothing. Every connection in cleartext compares its first bytes
   with PREFACE (gateway/server/connection.py, rule "HTTP/2 takes the connection
   over"); h2 and the HTTP/2 machinery are imported at the first connection that opens
   with it, so a worker whose clients all speak HTTP/1.1 never loads them.
"""

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
