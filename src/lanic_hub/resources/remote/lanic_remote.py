"""CXR-LanIC: the classes behind this model repository's ``auto_map`` and ``custom_pipelines``.

Research software, not a medical device. This file only imports the lanic-hub package, which
must be installed (``pip install lanic-hub``, or from its source repository). Then, without
importing anything else:

    from transformers import AutoModel, pipeline
    model = AutoModel.from_pretrained(REPO_ID, trust_remote_code=True)
    print(model.explain("chest.png"))              # the prediction and its exact explanation
    clf = pipeline("image-classification", model=REPO_ID, trust_remote_code=True)
    clf("chest.png")                               # the five findings with their probabilities
"""

try:
    from lanic_hub.hub_pipeline import LanICClassificationPipeline
    from lanic_hub.modeling import LanICConfig, LanICModel
except ImportError as exc:  # transformers skips imports inside try blocks when it checks a repo's code
    raise ImportError(
        "This CXR-LanIC model needs the lanic-hub package, which is not installed: "
        "`pip install lanic-hub` (or `pip install 'lanic-hub @ git+<its source repository>'`), "
        f"then load it again ({exc})"
    ) from exc

__all__ = ["LanICClassificationPipeline", "LanICConfig", "LanICModel"]
