"""HTTP: app.py (the Bottle app: errors, host check, same-origin JSON, API key), api.py (the API routes),
ops.py (dashboard, MJPEG, /metrics, history), limits.py (query numbers and worker budgets), mjpeg.py, metrics.py,
openapi.py, dashboard.py, trust.py (hosts, proxies, client address), static/ (the dashboard page)."""
