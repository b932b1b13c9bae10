from __future__ import annotations

import pytest

from lanic_hub.errors import VocabularyError
from lanic_hub.patterns.vocabulary import CATEGORIES, load_vocabulary


def test_the_packaged_vocabulary_covers_every_category():
    v = load_vocabulary()
    assert len(v) >= 300
    assert set(v.categories) == set(CATEGORIES)
    assert len({p.lower() for p in v.phrases}) == len(v)
    i = v.phrases.index("enlarged cardiac silhouette")
    assert (v.categories[i], v.concepts[i]) == ("cardiac", "cardiomegaly")


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("phrase\tcategory\nrib fracture\tbones\n", 2, "unknown category 'bones'"),
        ("\tdevice\n", 1, "empty phrase"),
        ("pacemaker\tdevice\npacemaker\tdevice\n", 2, "repeats line 1"),
        ("pacemaker\n", 1, "got 1 cells"),
        ("# only a comment\n", 0, "no phrases"),
    ],
)
def test_bad_vocabulary_files_name_the_line(tmp_path, text, line, words):
    p = tmp_path / "vocab.tsv"
    p.write_text(text)
    with pytest.raises(VocabularyError) as err:
        load_vocabulary(p)
    assert err.value.line == line and words in str(err.value) and str(p) in str(err.value)


def test_concept_defaults_to_the_phrase(tmp_path):
    p = tmp_path / "v.tsv"
    p.write_text("Pacemaker\tdevice\nchest tube\tdevice\tchest_tube\n")
    v = load_vocabulary(p)
    assert v.concepts == ("pacemaker", "chest_tube")
