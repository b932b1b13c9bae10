"""Python imports this at start-up from PYTHONPATH: the tests' subprocesses run offline too."""

import os

if os.environ.get("LANIC_OFFLINE_GUARD") == "1":
    from lanic_offline_guard import install

    install(log_path=os.environ.get("LANIC_OFFLINE_LOG") or None)
