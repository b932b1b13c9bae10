"""The Space of the lanic_accuracy metric (evaluate's standard widget)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("lanic_accuracy")
launch_gradio_widget(module)
