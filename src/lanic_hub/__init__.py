"""lanic-hub: CXR-LanIC, language-grounded interpretable chest X-ray classifiers.

Research software, not a medical device. Importing the package registers ``model_type = "lanic"``
with transformers' ``AutoConfig`` / ``AutoModel``.

>>> from lanic_hub import LanICModel                                   # doctest: +SKIP
>>> model = LanICModel.from_pretrained("runs/quickstart/model")        # doctest: +SKIP
>>> print(model.explain("chest.png"))                                 # doctest: +SKIP
"""

__version__ = "0.1.0"

from .modeling import LanICConfig, LanICModel, register  # noqa: E402

register()

__all__ = ["LanICConfig", "LanICModel", "__version__"]
