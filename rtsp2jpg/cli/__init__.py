"""The command line: main.py (every parser, dispatch), codes.py (exit codes), direct.py (a camera, no service),
remote.py (a running service over HTTP)."""
