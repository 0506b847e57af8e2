"""The arXiv categories' opinion on the domain (category_domains.py)."""

import pytest

from papertag.category_domains import ARCHIVE_DOMAINS, CATEGORY_DOMAINS, category_domain
from papertag.schema import DOMAINS


def test_every_mapped_domain_is_a_papertag_domain():
    assert set(CATEGORY_DOMAINS.values()) | set(ARCHIVE_DOMAINS.values()) <= set(DOMAINS)


@pytest.mark.parametrize("categories, domain", [
    (["cs.CV"], "computer-vision"), (["cs.CL", "cs.CV"], "nlp"), (["cs.RO"], "robotics"),
    (["cs.IR"], "information-retrieval"), (["cs.CR"], "security-privacy"), (["cs.SE"], "software-engineering"),
    (["cs.HC"], "hci"), (["eess.AS"], "speech-audio"), (["cs.SD", "cs.CL"], "speech-audio"),
    (["q-bio.NC"], "bio-medical"), (["cs.DC"], "ml-systems"), (["cs.AR"], "ml-systems"), (["cs.PF"], "ml-systems"),
    (["math.OC"], "ml-theory"), (["cs.LG", "stat.TH"], "ml-theory"), (["cs.MM"], "multimodal"),
    (["cs.SI"], "graph-learning"), (["hep-th"], "other"),
    # The general machine-learning categories have no opinion: the cross-lists speak, or nobody does.
    (["cs.LG", "cs.CV"], "computer-vision"), (["stat.ML", "cs.LG"], None), (["cs.AI"], None), ([], None),
])
def test_primary_category_first_then_the_cross_lists(categories, domain):
    assert category_domain(categories) == domain
