"""Routing (layer 1): the mount table as one ASGI app, and the health endpoints.

Rules:
1. The longest prefix on a segment boundary wins; `root_path` gains the prefix and
   `path` stays whole (the ASGI spec).
2. No event loop, socket or thread here: routing is a lookup in data.
3. Imports layer 0 and gateway.config only.
"""
