"""lanic-hub: CXR-LanIC, language-grounded interpretable chest X-ray classifiers.

Research software, not a medical device. Importing the package registers ``model_type = "lanic"``
with transformers' ``AutoConfig`` / ``AutoModel``.

>>> from lanic_hub import LanICModel                                   # doctest: +SKIP
>>> model = LanICModel.from_pretrained("runs/quickstart/model")        # doctest: +SKIP
>>> print(model.explain("chest.png"))                                 # doctest: +SKIP
"""

from .constants import VERSION as __version__
from .modeling import LanICConfig, LanICModel, register

register()

__all__ = ["LanICConfig", "LanICModel", "__version__"]
