"""The Space of the lanic_fidelity metric (evaluate's standard widget)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("lanic_fidelity")
launch_gradio_widget(module)
