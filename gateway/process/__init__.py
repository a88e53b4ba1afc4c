"""Process management (layer 3): one worker, the supervisor and its children, the pipe
between them, development reload, and the listening sockets (DESIGN §4).

Rules:
1. The parent binds every socket once; workers inherit them.
2. Signal handlers only queue; the main loop dispatches.
3. Imports layers 0 to 2.
"""
