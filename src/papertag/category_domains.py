"""The arXiv category as a second opinion on a paper's domain (schema.DOMAINS), next to the model's.

The authors chose the category, so it is independent of the model; it is also coarse. The primary category
speaks first; when it has no opinion, the cross-lists do, in order. General machine-learning categories (cs.LG,
stat.ML, cs.AI, cs.NE) have no opinion: most papers in them belong to one of the specific domains, which only the
abstract tells, so cs.LG with cs.CV says computer-vision and cs.LG with stat.TH says ml-theory. No category maps
to reinforcement-learning (arXiv has none for it). Categories outside machine learning's reach (physics, astronomy,
economics, finance) say other. The value is stored with each paper when it is written (store.py), so a change
here reaches a paper when it is next ingested.
"""

from __future__ import annotations

from typing import Iterable

CATEGORY_DOMAINS: dict[str, str] = {
    "cs.CL": "nlp",
    "cs.CV": "computer-vision",
    "eess.IV": "computer-vision",  # image and video processing
    "cs.GR": "computer-vision",  # graphics: rendering, 3D reconstruction
    "cs.RO": "robotics",
    "cs.IR": "information-retrieval",
    "cs.DL": "information-retrieval",  # digital libraries: search and citation analysis
    "cs.CR": "security-privacy",
    "cs.SE": "software-engineering",
    "cs.PL": "software-engineering",
    "cs.HC": "hci",
    "cs.SD": "speech-audio",
    "eess.AS": "speech-audio",
    "cs.DC": "ml-systems",
    "cs.AR": "ml-systems",
    "cs.PF": "ml-systems",
    "cs.MM": "multimodal",
    "cs.SI": "graph-learning",  # social and information networks
    "stat.TH": "ml-theory",
    "cs.CC": "ml-theory",
    "cs.DS": "ml-theory",
    "cs.IT": "ml-theory",
    "physics.med-ph": "bio-medical",
    "physics.bio-ph": "bio-medical",
}
# Whole archives, for the categories not named above.
ARCHIVE_DOMAINS: dict[str, str] = {
    "q-bio": "bio-medical",
    "math": "ml-theory",
    **{archive: "other" for archive in (
        "astro-ph", "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math-ph", "nlin", "nucl-ex",
        "nucl-th", "physics", "quant-ph", "econ", "q-fin")},
}
NO_OPINION = frozenset({"cs.LG", "stat.ML", "cs.AI", "cs.NE"})


def category_domain(categories: Iterable[str]) -> str | None:
    """The domain the categories (primary first) point to, or None when none of them has an opinion."""
    for category in categories:
        if category in NO_OPINION:
            continue
        domain = CATEGORY_DOMAINS.get(category) or ARCHIVE_DOMAINS.get(category.split(".", 1)[0])
        if domain:
            return domain
    return None
