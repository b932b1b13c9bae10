"""The CXR-LanIC Space. Research use only; not a medical device.

Loads the LanIC model named by ``LANIC_MODEL`` (a Hub repo id or a path; default: the quickstart
output, built on first start if missing) and serves lanic_hub.demo's app.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from lanic_hub.demo import launch  # noqa: E402

if __name__ == "__main__":
    launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"))
