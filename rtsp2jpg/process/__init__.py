"""The process around the Service (used by serve.py and cli/): logging set-up (logs.py), the fd 1/2 redactor
(nativelog.py), systemd notify and watchdog (sdnotify.py)."""
