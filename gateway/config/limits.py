"""The bounds and defaults of the settings, each with the reason for its number.

Rules:
1. Every limit and default a setting declares (gateway/config/server_table.py,
   gateway/config/mount_table.py) is named here with its unit and the precedent it
   follows (DESIGN §5: every buffer, queue and wait has a bound, with a comment that says
   why that number).
2. Plain values only: no validation and no imports, so the server and the tests may
   name a bound without loading a mount file.
"""

from __future__ import annotations

# Proxies whose X-Forwarded-*/Forwarded fields count (proxy_headers): this host's own,
# as uvicorn and gunicorn trust by default. Not "unix": who may connect to a unix socket
# is a matter of file permissions, so trusting its peers is left to an explicit choice.
FORWARDED_ALLOW_IPS = ("127.0.0.1", "::1")

# A WSGI mount's pool size when the file does not say. Between Waitress's 4 threads and
# mod_wsgi daemon mode's 15: enough to overlap the database and network waits of a
# typical legacy app, few enough that several WSGI mounts in one worker stay cheap.
# Explicit `threads` per mount is recommended; this is only the safe fallback.
DEFAULT_WSGI_THREADS = 10
# Requests a WSGI mount holds waiting for a free thread; past it, 503. The listen queue
# uWSGI and mod_wsgi's daemon mode put in front of a legacy app's workers (100 each):
# deep enough for a burst (a page's parallel requests, a client's retry), bounded so that
# under overload a request waits at most ~100/threads request durations or fails at once.
DEFAULT_WSGI_MAX_QUEUE = 100
# A WSGI request body up to this size is read on the event loop before the call takes a
# thread, so a client that trickles it holds a connection, not one of the pool's threads;
# a larger body streams into the thread as the app reads. 64 KiB holds nearly every form
# post and JSON call whole: more than nginx's client_body_buffer_size (8-16 KiB) and less
# than waitress's in-memory inbuf_overflow (512 KiB), because both of those then spool
# the whole body to a temporary file, and this bound is all we buffer. It is the
# connection's own read-ahead bound (BODY_HIGH_WATER_BYTES) again, so a thousand stalled
# uploads cost at most ~128 MiB.
WSGI_BODY_BUFFER_BYTES = 64 * 1024

# The whole request head (request line + headers). 16 KiB is h11's own default
# (DEFAULT_MAX_INCOMPLETE_EVENT_SIZE); nginx's default buffers accept 4 x 8 KiB lines and
# gunicorn ~100 fields of 8 KiB, so real browsers with big cookies fit, and a peer cannot
# make us buffer an unbounded head. Below 1 KiB ordinary requests would be refused.
MAX_HEADER_BYTES = 16 * 1024
MIN_HEADER_BYTES = 1024

# The request target (path + query). RFC 9112 §3 asks servers to support request lines
# of at least 8000 octets; nginx's 8 KiB line buffer is the same figure. Beyond it: 414.
MAX_TARGET_BYTES = 8 * 1024
MIN_TARGET_BYTES = 256

# Per-mount request body limit. nginx's 1 MiB default breaks the file uploads that legacy
# apps routinely accept, so we follow the 100 MB figure common at CDNs (Cloudflare's
# default): generous for uploads, yet one request cannot fill memory or disk unnoticed.
# 0 refuses any request body (413).
MAX_BODY_BYTES = 100 * 1024 * 1024

# The request body a fallback mount keeps, so that it can replay the request to its
# target. 1 MiB is nginx's client_max_body_size default: forms and JSON fit with room to
# spare, uploads do not. It is held only until the first app's status is known, which
# is usually at once; a larger body keeps the first answer (README: Migrating).
FALLBACK_BODY_BYTES = 1024 * 1024
# Shadow copies a mount runs at once, per worker (shadow_max_in_flight). A shadow that
# answers as fast as the primary holds a slot for about one request's time: ~10 copies
# at 1,000 requests/s per worker and 10 ms each; 16 leaves room for a burst. A slower
# shadow is neither waited for nor queued for: its copies are dropped and counted, so
# its tasks and buffers (a copy holds at most 1 MiB of request body and 1 MiB of each
# answer, gateway/migration/shadow.py) stay bounded whatever the shadow does.
SHADOW_MAX_IN_FLIGHT = 16
# Safe methods (RFC 9110 §9.2.1): a copy runs the request a second time, which only a
# request without side effects can afford by default.
SHADOW_METHODS = ("GET", "HEAD")
# Fields a shadow copy goes without: the user's credentials. The shadow is code under
# trial, often with other logging and other owners; a copy that carries a session
# cookie or a bearer token acts as that user a second time, and may write their secret
# into a log the primary's owners never see. Sites whose shadow needs them opt in with [].
SHADOW_DROP_HEADERS = ("cookie", "authorization")

# uvicorn's default; long enough for a browser's next request, short enough that idle
# connections do not pile up (gunicorn uses 2 s, nginx 75 s behind a proxy).
KEEP_ALIVE_TIMEOUT_S = 5.0
# From the first byte of a request head to its end. A real client sends its head in one
# or two packets: even 16 KiB over a 56 kbit/s link takes under 3 s, and TCP's first
# retransmissions (1 s, 2 s) fit too. nginx (client_header_timeout) and Node.js allow
# 60 s; a Slowloris client holds a connection for the whole bound, so ours is tighter.
HEADER_TIMEOUT_S = 10.0
# The longest pause in a request body while the app waits for it (nginx's
# client_body_timeout has the same meaning, 60 s). A mobile client survives a handover
# or a run of retransmissions (1+2+4+8 s) within it; a stalled upload to a WSGI app holds
# one of its pool's threads meanwhile, hence half of nginx's figure.
BODY_TIMEOUT_S = 30.0
# How long a response may wait on a client that reads nothing (its socket's buffers and
# the transport's write buffer full) before the connection is cut and the app's send (a
# WSGI thread) is freed. nginx's send_timeout has the same meaning, 60 s; like
# body_timeout, ours is half of that because a WSGI response holds one of its pool's
# threads meanwhile, and it matches gunicorn's `timeout` (30 s), after which a sync
# worker stuck on a client is killed. A client that keeps reading, however slowly, is
# not cut: the wait restarts whenever the bytes it has not taken reach a new low.
SEND_TIMEOUT_S = 30.0
# gunicorn's default, and Kubernetes' terminationGracePeriodSeconds: drain fits the pod's.
GRACEFUL_TIMEOUT_S = 30.0

# gunicorn's default: a worker's loop that has not checked in for this long is stuck (an
# app blocking it, say), so it is killed. Long enough for a slow GC pause or a big import.
WORKER_TIMEOUT_S = 30.0

# WebSocket keep-alive: uvicorn's and the websockets library's 20 s for both, so a dead
# peer behind a NAT is noticed within a minute, and an idle proxy (60 s) never times out.
WS_PING_INTERVAL_S = 20.0
WS_PING_TIMEOUT_S = 20.0
# The largest WebSocket message, reassembled: uvicorn's and websockets' 16 MiB default.
# Beyond it the connection closes with 1009 (RFC 6455 §7.4.1): a peer cannot make a
# worker buffer an unbounded message.
WS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# Pending connections the kernel queues per socket before accept(); gunicorn's default,
# and no more than the usual net.core.somaxconn, which caps it anyway.
LISTEN_BACKLOG = 2048
