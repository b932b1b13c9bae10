"""The Space of the lanic_explanations metric (evaluate's standard widget)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("lanic_explanations")
launch_gradio_widget(module)
