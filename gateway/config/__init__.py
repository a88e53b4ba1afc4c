"""Configuration (layer 1): the mount file and the command line become frozen settings.

Rules:
1. Each setting is declared once (name, type, default, reason, CLI flag, env var), and
   the rules that span several keys sit beside the declarations.
2. Nothing here touches the network, a thread or a signal: a mount file is checked with
   data in, data out, so `gateway check` needs no server.
3. Imports only layer 0 (gateway.errors, gateway.asgi) and, for the trusted-proxy list,
   the Forwarded parser that applies it (gateway.http.forwarded): one parser of that list.
"""
