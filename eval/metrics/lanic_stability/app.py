"""The Space of the lanic_stability metric (evaluate's standard widget)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("lanic_stability")
launch_gradio_widget(module)
