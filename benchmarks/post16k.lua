-- wrk script for the echo cases: every request is a POST with a 16 KiB body.
-- wrk adds the Content-Length header itself from wrk.body.
wrk.method = "POST"
wrk.body = string.rep("x", 16384)
wrk.headers["Content-Type"] = "application/octet-stream"
