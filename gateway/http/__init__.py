"""Sans-I/O HTTP/1.1: bytes in, request events out; response parts in, bytes out.

Rules:
1. Nothing here touches a socket, a transport or an event loop; the connection layer
   (gateway/server/connection.py) owns all I/O and timers.
2. A parser library (h11) is imported only by its session module, and its exceptions are
   translated there into gateway.errors, each carrying the status it implies.
3. Every session exposes the same small interface (`HTTPSession` in session.py), so a
   faster parser can sit beside h11 without a second copy of the connection logic.
"""
