"""The Space of the lanic_monosemanticity metric (evaluate's standard widget)."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("lanic_monosemanticity")
launch_gradio_widget(module)
