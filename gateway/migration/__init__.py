"""The migration toolkit (layer 1): rules that send a mount's requests to another mount
by name (fallback, canary, shadow) and the comparison of two answers.

Rules:
1. A rule wraps a mount's ASGI app; the router never knows a rule is there.
2. Imports layer 0, gateway.config and gateway.routing only.
3. Only the shadow rule may use asyncio: its copy runs as a task of its own, off the
   primary's critical path.
"""
