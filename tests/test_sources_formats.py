"""The richer input formats, each read from a fixture file written in the real format's structure (tests/data/sources)."""

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from papertag.errors import InputError
from papertag.selection import Selection
from papertag.sources import parse_file, read_inputs

DATA = Path(__file__).parent / "data" / "sources"
SPEECH_ABSTRACT_START = "We study sparse mixture-of-experts routing for speech translation"


def test_arxiv_api_atom_response():
    parsed = parse_file(DATA / "arxiv_api.xml")
    assert parsed.format == "arxiv-atom"
    speech, vqa = parsed.papers
    assert speech.id == "2401.01234" and speech.arxiv_id == "2401.01234" and speech.arxiv_version == 2
    assert speech.title == "Sparse Mixture-of-Experts Routing for Low-Resource Speech Translation"
    assert speech.abstract.startswith(SPEECH_ABSTRACT_START) and "\n" not in speech.abstract
    assert speech.authors == ("Amina Okafor", "Lukas Brandt")
    assert speech.categories == ("cs.CL", "cs.SD", "eess.AS")  # the primary category first
    assert (speech.published, speech.updated) == (date(2024, 1, 3), date(2024, 2, 14))
    assert speech.doi == "10.18653/v1/2024.acl-long.101" and speech.venue.startswith("Proceedings of ACL 2024")
    assert speech.url == "http://arxiv.org/abs/2401.01234v2"
    assert speech.source.endswith("arxiv_api.xml (http://arxiv.org/api/query?search_query%3Dcat%3Acs.CL"
                                  "%26id_list%3D%26start%3D0%26max_results%3D3)")  # the file and the query it answered
    assert vqa.categories == ("cs.CV", "cs.CL") and vqa.doi is None
    assert parsed.problems == ["entry 3: missing 'abstract'"]


@pytest.mark.parametrize("document, message", [
    ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry>'
     '<id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.1234v1</id><title>Error</title>'
     '<summary>incorrect id format for 1234.1234v1</summary></entry></feed>',
     "entry 1: arXiv API error: incorrect id format"),
    ('<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><error code="noRecordsMatch">No records match</error>'
     '</OAI-PMH>', "OAI-PMH response is an error: noRecordsMatch"),
])
def test_error_responses_are_one_line(tmp_path, document, message):
    path = tmp_path / "response.xml"
    path.write_text(document)
    with pytest.raises(InputError, match=message):
        parse_file(path)


def test_oai_pmh_arxiv_format():
    parsed = parse_file(DATA / "oai_arxiv.xml")
    assert parsed.format == "arxiv-oai"
    speech, old = parsed.papers
    assert speech.id == "2401.01234" and speech.arxiv_version is None  # the arXiv format has no version numbers
    assert speech.authors == ("Amina Okafor", "Lukas Brandt") and speech.categories == ("cs.CL", "cs.SD", "eess.AS")
    assert (speech.published, speech.updated) == (date(2024, 1, 3), date(2024, 2, 14))
    assert old.id == "cs/0112017" and old.authors == ("Thomas Hofmann",) and old.published == date(2001, 12, 20)
    assert speech.source.endswith("(http://export.arxiv.org/oai2?verb=ListRecords&metadataPrefix=arXiv&set=cs"
                                  "&from=2024-02-01)")
    assert parsed.problems == ["record 2 (oai:arXiv.org:2402.00001): deleted from arXiv"]


def test_oai_pmh_arxiv_raw_format():
    parsed = parse_file(DATA / "oai_arxivraw.xml")
    assert parsed.format == "arxiv-oai"
    vqa, energy = parsed.papers
    assert vqa.id == "2402.05678" and vqa.arxiv_version == 1 and vqa.published == date(2024, 2, 8)
    assert energy.arxiv_version == 2 and energy.authors == ("Priya Raman", "Jonas Weber", "Mei Lin")
    assert (energy.published, energy.updated) == (date(2023, 10, 17), date(2024, 2, 12))
    assert energy.categories == ("cs.DC", "cs.LG") and energy.doi == "10.48550/arxiv.2310.11111"
    assert parsed.problems == []


def test_arxiv_metadata_snapshot():
    parsed = parse_file(DATA / "arxiv-metadata-oai-snapshot.json")
    assert parsed.format == "arxiv-snapshot"
    assert [p.id for p in parsed.papers] == ["0704.0001", "2401.01234", "2312.04567", "2402.07777"]
    diphoton = parsed.papers[0]
    assert diphoton.authors[0] == "C. Balázs" and diphoton.arxiv_version == 2
    assert (diphoton.published, diphoton.updated) == (date(2007, 4, 2), date(2008, 11, 13))
    assert diphoton.doi == "10.1103/physrevd.76.013009" and diphoton.venue == "Phys.Rev.D76:013009,2007"
    assert parsed.problems[0].startswith("line 4: not valid JSON")
    assert parsed.problems[1] == "line 6: missing 'abstract'"


def test_snapshot_selection_is_applied_while_reading():
    by_category = parse_file(DATA / "arxiv-metadata-oai-snapshot.json", selection=Selection.of(["cs.CL"]))
    assert [p.id for p in by_category.papers] == ["2401.01234"]
    assert by_category.not_selected == 4  # the cut-off line has no cs.CL: never parsed, so not a problem either
    archive = parse_file(DATA / "arxiv-metadata-oai-snapshot.json", selection=Selection.of(["q-bio"]))
    assert [p.id for p in archive.papers] == ["2402.07777"]
    dated = parse_file(DATA / "arxiv-metadata-oai-snapshot.json",
                       selection=Selection.of(since="2023-12-01", until="2024-01-31"))
    # The first version's date decides: 2401.01234 was first published on 2024-01-03, updated in February.
    assert [p.id for p in dated.papers] == ["2401.01234", "2312.04567"]


def test_snapshot_is_streamed_not_read_whole(tmp_path, monkeypatch):
    """A big snapshot is read line by line: read() of the rest of the file is never called."""
    path = tmp_path / "arxiv-metadata-oai-snapshot.json"
    line = (DATA / "arxiv-metadata-oai-snapshot.json").read_text().splitlines()[2]
    with path.open("w") as out:
        for number in range(3000):  # about 1.5 MB, far more than the 64 KB that format sniffing reads
            record = json.loads(line) | {"id": f"2312.{number:05d}", "categories": "cs.CV" if number % 3 else "cs.CL"}
            out.write(json.dumps(record) + "\n")
    reads = []
    original_open = Path.open

    def spy_open(self, *args, **kwargs):
        stream = original_open(self, *args, **kwargs)
        if self == path:
            original_read = stream.read
            stream.read = lambda size=-1: reads.append(size) or original_read(size)
        return stream

    monkeypatch.setattr(Path, "open", spy_open)
    parsed = parse_file(path, selection=Selection.of(["cs.CL"]))
    assert len(parsed.papers) == 1000 and parsed.not_selected == 2000
    assert all(size is not None and 0 < size <= 1 << 16 for size in reads)


def test_bibtex_export_with_abstracts():
    parsed = parse_file(DATA / "zotero.bib")
    assert parsed.format == "bibtex"
    speech, energy, clinical = parsed.papers
    assert speech.title == "Sparse Mixture-of-Experts Routing for Low-Resource Speech Translation"  # braces gone
    assert speech.id == "10.18653/v1/2024.acl-long.101" and speech.authors == ("Amina Okafor", "Lukas Brandt")
    assert speech.venue.startswith("Proceedings of the 62nd Annual Meeting") and speech.published == date(2024, 8, 1)
    assert energy.arxiv_id == "2310.11111" and energy.id == "2310.11111" and "23% at equal" in energy.abstract
    assert clinical.arxiv_id == "2403.01010" and clinical.categories == ("cs.LG",)
    assert clinical.authors == ("Soo-Jin Lee",) and clinical.published == date(2024, 3, 1)
    assert "trees & logistic regression" in clinical.abstract
    # The entry without an abstract is named, and counted among the skipped records.
    assert parsed.problems == ["entry 3 (muller_uber_2022, line 31): missing 'abstract'"]


def test_broken_bibtex_entry_is_named(tmp_path):
    path = tmp_path / "refs.bib"
    good = (DATA / "zotero.bib").read_text().split("@misc")[0]
    path.write_text("@article{broken, title = {Unclosed\n" + good)
    parsed = parse_file(path)
    assert len(parsed.papers) == 1 and parsed.problems[0].startswith("line 1: broken BibTeX entry")


def test_semantic_scholar_single_paper():
    parsed = parse_file(DATA / "semantic_scholar_paper.json")
    assert parsed.format == "semantic-scholar"
    (paper,) = parsed.papers
    assert paper.id == "2401.01234" and paper.doi == "10.18653/v1/2024.acl-long.101"
    assert paper.authors == ("Amina Okafor", "Lukas Brandt") and paper.published == date(2024, 1, 3)
    assert paper.venue == "Annual Meeting of the Association for Computational Linguistics"


def test_semantic_scholar_data_list():
    parsed = parse_file(DATA / "semantic_scholar_search.json")
    assert parsed.format == "semantic-scholar"
    retrieval, vqa = parsed.papers
    assert retrieval.id == "10.1145/3583780.3614901" and retrieval.venue == "CIKM"
    assert vqa.arxiv_id == "2402.05678" and vqa.venue is None  # "arXiv.org" is not a venue
    assert parsed.problems == ["paper 2 (A Workshop Paper Without An Abstract In Semantic Scholar): missing 'abstract'"]


@pytest.mark.parametrize("name, expected", [
    ("arxiv_api.xml", "arxiv-atom"), ("oai_arxiv.xml", "arxiv-oai"), ("zotero.bib", "bibtex"),
    ("arxiv-metadata-oai-snapshot.json", "arxiv-snapshot"), ("semantic_scholar_paper.json", "semantic-scholar"),
    ("semantic_scholar_search.json", "semantic-scholar"),
])
def test_formats_are_sniffed_by_content(tmp_path, name, expected):
    """No extension to go by (standard input, a download saved as 'data'): the content decides."""
    path = tmp_path / "download"
    shutil.copy(DATA / name, path)
    assert parse_file(path).format == expected


def test_format_option_overrides_the_content(tmp_path):
    with pytest.raises(InputError, match="no abstracts found"):
        parse_file(DATA / "zotero.bib", "jsonl")
    with pytest.raises(InputError, match="not an Atom feed"):
        parse_file(DATA / "oai_arxiv.xml", "arxiv-atom")


def test_selection_applies_to_every_format():
    inputs = read_inputs([DATA / "arxiv_api.xml", DATA / "zotero.bib"], selection=Selection.of(since="2024-02-01"))
    assert [p.id for p in inputs.papers] == ["2402.05678", "10.18653/v1/2024.acl-long.101", "2403.01010"]
    assert inputs.not_selected == 2  # first published 2024-01-03 (the Atom entry) and 2023-10 (the BibTeX one)


@pytest.mark.parametrize("since, until, message", [
    ("yesterday", None, "--since 'yesterday' is not a date"),
    ("2024-02-01", "2024-01-01", "--since 2024-02-01 is after --until 2024-01-01"),
])
def test_bad_selection_is_one_line(since, until, message):
    with pytest.raises(InputError, match=message):
        Selection.of(since=since, until=until)


def test_xml_entity_bombs_are_refused(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
                    '<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>&lol2;</title></entry></feed>')
    with pytest.raises(InputError, match="entity declarations is refused"):
        parse_file(path)
