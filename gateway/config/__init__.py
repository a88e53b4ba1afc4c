"""Configuration (layer 1): the mount file and the command line become frozen settings.

Rules:
1. Each setting is declared once (name, type, default, reason, CLI flag, env var), and
   the rules that span several keys sit beside the declarations.
2. Nothing here touches the network, a thread or a signal: a mount file is checked with
   data in, data out, so `gateway check` needs no server.
3. Imports only layer 0 (gateway.errors, gateway.asgi) and, for the trusted-proxy list,
   the Forwarded parser that applies it (gateway.http.forwarded): one parser of that list.

Modules, by job: limits (the bounds and defaults, each with its reason); settings (how
a setting is declared); server_table and mount_table (the [server] and [[mount]]
declarations with their cross-key rules); checks (the validators); bind, links and
access_format (one value's grammar each); options (the CLI flags, environment variables
and reference docs derived from the declarations); loader (TOML in, Config out).
"""
