"""One paper, one row, across sources and runs: each rule of identity.py, through a real ingest against the fake
OpenAI-compatible server (no embeddings: they are not what is tested here)."""

from datetime import date
from pathlib import Path

import pytest

from papertag.identity import near_identical, resolve, same_paper, title_key
from papertag.sources import make_paper, parse_file
from test_ingest import count, run

DATA = Path(__file__).parent / "data" / "sources"
ABSTRACT = ("We study sparse mixture-of-experts routing for speech translation in low-resource languages. Routing "
            "experts by language family improves BLEU by 2.1 points on CoVoST 2 and by 1.4 points on MuST-C over a "
            "dense baseline of the same compute, while halving inference cost.")
TITLE = "Sparse Mixture-of-Experts Routing for Low-Resource Speech Translation"


def papers_of(*names):
    return [paper for name in names for paper in parse_file(DATA / name).papers]


def ingest(db_path, papers, server):
    return run(db_path, papers, server, vectors=False)


def rows(db_path, sql):
    from papertag.queries import Reader

    with Reader(db_path) as reader:
        return reader.con.execute(sql).fetchall()


def arxiv_paper(version, abstract=ABSTRACT, **metadata):
    return make_paper(TITLE, abstract, f"v{version}.xml", arxiv_id="2401.01234", arxiv_version=version, **metadata)


def test_same_arxiv_id_in_another_version_is_one_paper(db_path, fake_server):
    ingest(db_path, [arxiv_paper(2)], fake_server)
    older = arxiv_paper(1, abstract="An older abstract of the same paper, with different words in it entirely.")
    report = ingest(db_path, [older], fake_server)
    assert rows(db_path, "SELECT id, arxiv_version, abstract FROM papers") == [("2401.01234", 2, ABSTRACT)]
    assert fake_server.calls == 1 and report.cached == 1  # an older version changes nothing


def test_same_doi_is_one_paper(db_path, fake_server):
    ingest(db_path, papers_of("zotero.bib"), fake_server)
    calls = fake_server.calls
    ingest(db_path, papers_of("semantic_scholar_paper.json"), fake_server)  # the same DOI, now with an arXiv id
    assert rows(db_path, "SELECT count(*) FROM papers WHERE doi = '10.18653/v1/2024.acl-long.101'") == [(1,)]
    assert rows(db_path, "SELECT id, arxiv_id FROM papers WHERE doi = '10.18653/v1/2024.acl-long.101'") == [
        ("10.18653/v1/2024.acl-long.101", "2401.01234")]  # the stored id stays; the arXiv id is added
    assert fake_server.calls == calls  # the same text: not tagged again


def test_same_normalised_title_and_near_identical_abstract_is_one_paper(db_path, fake_server):
    listing = make_paper(TITLE.upper().replace("-", " "), ABSTRACT, "page.txt")
    ingest(db_path, [listing], fake_server)
    edited = ABSTRACT.replace("while halving inference cost", "and halves the inference cost")
    assert near_identical(ABSTRACT, edited) and title_key(TITLE) == title_key(listing.title)
    ingest(db_path, [arxiv_paper(1, edited, categories=["cs.CL"])], fake_server)
    assert rows(db_path, "SELECT id, arxiv_id, abstract FROM papers") == [(listing.id, "2401.01234", edited)]
    # Another abstract under the same title is another paper.
    other = make_paper(TITLE, "A survey of routing methods for mixture-of-experts models in speech and text.", "x")
    ingest(db_path, [other], fake_server)
    assert rows(db_path, "SELECT count(*) FROM papers") == [(2,)]


def test_different_ids_given_by_the_user_or_arxiv_stay_two_papers():
    first, second = make_paper(TITLE, ABSTRACT, "a.jsonl", "mine-1"), make_paper(TITLE, ABSTRACT, "b.jsonl", "mine-2")
    assert not same_paper(first, second)
    assert not same_paper(make_paper(TITLE, ABSTRACT, "a", arxiv_id="2401.00001"),
                          make_paper(TITLE, ABSTRACT, "b", arxiv_id="2401.00002"))
    assert same_paper(first, make_paper(TITLE, ABSTRACT, "page.txt"))  # no id of its own: the text decides


def test_newer_version_with_changed_abstract_is_tagged_again(db_path, fake_server):
    ingest(db_path, [arxiv_paper(1)], fake_server)
    changed = ABSTRACT + " We release code and checkpoints for all twenty-one language pairs."
    report = ingest(db_path, [arxiv_paper(2, changed)], fake_server)
    assert report.extracted == 1 and fake_server.calls == 2
    assert rows(db_path, "SELECT arxiv_version, abstract FROM papers") == [(2, changed)]
    # Both extractions are kept; the current one describes version 2's text.
    assert rows(db_path, "SELECT count(*) FROM extractions") == [(2,)]
    assert count(db_path, "SELECT count(*) FROM current_extractions") == 1


def test_newer_version_with_the_same_abstract_is_not_tagged_again(db_path, fake_server):
    ingest(db_path, [arxiv_paper(1)], fake_server)
    report = ingest(db_path, [arxiv_paper(2, "  " + ABSTRACT.upper() + " ", updated=date(2024, 2, 14))], fake_server)
    assert report.extracted == 0 and report.cached == 1 and fake_server.calls == 1
    assert rows(db_path, "SELECT arxiv_version, updated FROM papers") == [(2, date(2024, 2, 14))]


def test_merge_keeps_the_richest_metadata_and_every_extraction(db_path, fake_server):
    ingest(db_path, papers_of("zotero.bib"), fake_server)  # DOI, venue, URL, publication month; no categories
    before = rows(db_path, "SELECT id, summary FROM extractions WHERE paper_id = '10.18653/v1/2024.acl-long.101'")
    ingest(db_path, papers_of("arxiv_api.xml", "oai_arxiv.xml"), fake_server)  # arXiv id, version, categories
    (paper,) = rows(db_path, """SELECT id, arxiv_id, arxiv_version, categories, venue, published, updated, url, authors,
                                       category_domain FROM papers WHERE doi = '10.18653/v1/2024.acl-long.101'""")
    assert paper[:4] == ("10.18653/v1/2024.acl-long.101", "2401.01234", 2, ["cs.CL", "cs.SD", "eess.AS"])
    assert paper[4].startswith("Proceedings of the 62nd Annual Meeting")  # the fuller venue of the two
    assert paper[5:7] == (date(2024, 1, 3), date(2024, 2, 14))  # the earliest publication, the latest update
    # Single values come from the record whose text is stored (arXiv's version 2) when it has them.
    assert paper[7] == "http://arxiv.org/abs/2401.01234v2" and paper[8] == ["Amina Okafor", "Lukas Brandt"]
    assert paper[9] == "nlp"
    after = rows(db_path, "SELECT id, summary FROM extractions WHERE paper_id = '10.18653/v1/2024.acl-long.101'")
    assert set(before) <= set(after)


def test_every_source_of_one_paper_in_one_run_is_one_row_and_one_call(db_path, fake_server):
    papers = papers_of("zotero.bib", "semantic_scholar_paper.json", "arxiv_api.xml", "oai_arxiv.xml",
                       "arxiv-metadata-oai-snapshot.json")
    speech = [p for p in papers if p.title == TITLE]
    assert len(speech) == 5
    ingest(db_path, speech, fake_server)
    assert rows(db_path, "SELECT count(*), any_value(arxiv_version) FROM papers") == [(1, 2)]
    assert fake_server.calls == 1


def test_resolve_keeps_input_order_and_first_text_within_a_run():
    first = make_paper("T", "first text", "a", "same")
    second = make_paper("T", "second text", "b", "same")
    assert resolve([first, second]).papers == [first]


def test_a_record_that_ties_two_stored_rows_together_makes_them_one_and_keeps_both_extractions(db_path, fake_server):
    """The snapshot's record (arXiv id, no DOI) and a journal's BibTeX entry (DOI, a rewritten abstract) are two
    rows until a Semantic Scholar record with both ids shows they are one paper."""
    preprint = make_paper(TITLE, ABSTRACT, "snapshot.json", arxiv_id="2401.01234", arxiv_version=1)
    journal = make_paper(TITLE, "A journal abstract, rewritten from scratch for the camera-ready version of the work.",
                         "refs.bib", doi="10.18653/v1/2024.acl-long.101", venue="ACL 2024")
    ingest(db_path, [preprint], fake_server)
    ingest(db_path, [journal], fake_server)
    assert rows(db_path, "SELECT count(*) FROM papers") == [(2,)]
    (s2,) = papers_of("semantic_scholar_paper.json")
    ingest(db_path, [s2], fake_server)
    assert rows(db_path, "SELECT id, arxiv_id, arxiv_version, doi, venue FROM papers") == [
        # the fuller of the two venues
        ("2401.01234", "2401.01234", 1, "10.18653/v1/2024.acl-long.101",
         "Annual Meeting of the Association for Computational Linguistics")]
    # Both earlier extractions are kept under the row that stays; the preprint's text is still the current one.
    assert rows(db_path, "SELECT DISTINCT paper_id FROM extractions") == [("2401.01234",)]
    assert rows(db_path, "SELECT count(*) FROM extractions") == [(2,)]
    assert rows(db_path, "SELECT paper_id FROM current_extractions") == [("2401.01234",)]
    assert fake_server.calls == 2  # the merged paper's text was tagged before


@pytest.mark.parametrize("first, second", [("Attention is all you need", "ATTENTION IS ALL YOU NEED!"),
                                           ("Über Sprachmodelle", "Uber sprachmodelle")])
def test_title_keys_fold_case_punctuation_and_accents(first, second):
    assert title_key(first) == title_key(second)
