"""The server (layer 2): connections, the ASGI cycles of their streams, lifespan, TLS and
metrics.

Rules:
1. A connection is the only code that touches a transport.
2. The ASGI cycles (HTTP and WebSocket) never frame bytes: framing belongs to the
   sessions in gateway.http, behind the connection.
3. Imports layers 0 and 1 (config, http, routing, migration, adapters), never a process.
"""
