from papertag.domains import cue_scores, refine_domain
from papertag.extract import finish
from papertag.schema import PaperTags

RECOMMENDER = ("Session-based recommendation with graph priors",
               "We study recommender systems for e-commerce. Our model improves click-through rate and ranking "
               "quality of recommended items on three public datasets.")
THEORY = ("Sharp bounds for two-layer networks",
          "We prove an upper bound on the sample complexity of learning two-layer networks and a matching lower bound.")


def test_cues_in_the_title_weigh_more_than_in_the_abstract():
    scores = cue_scores(*RECOMMENDER)
    assert scores["information-retrieval"] >= 5 and scores["information-retrieval"] > scores["reinforcement-learning"]


def test_clear_cues_override_a_fallback_domain():
    assert refine_domain("reinforcement-learning", *RECOMMENDER) == "information-retrieval"
    assert refine_domain("other", *THEORY) == "ml-theory"


def test_weak_or_tied_cues_leave_the_models_answer():
    title, abstract = "A study of things", "We present a method and evaluate it on images and speech."
    assert refine_domain("computer-vision", title, abstract) == "computer-vision"
    assert refine_domain("speech-audio", title, abstract) == "speech-audio"


def test_finish_records_a_replaced_domain():
    tags = PaperTags.model_construct(summary="We recommend items.", tasks=["recommendation", "ranking"],
                                     methods=["graph priors", "ranking"], benchmarks=[], domain="reinforcement-learning")
    finished, dropped = finish(tags, *RECOMMENDER)
    assert finished.domain == "information-retrieval" and "domain: reinforcement-learning" in dropped


def test_cues_never_send_a_paper_to_a_fallback_domain():
    title, abstract = "Agents in environments", "Agents learn a policy from reward in environments, an agent per robot arm."
    assert refine_domain("robotics", title, abstract) == "robotics"  # rl cues are strong, but rl is a fallback


def test_a_close_runner_up_the_model_rarely_gives_wins_over_its_favourite():
    """The model leans toward "other"; a paper it scores 0.45 "other" and 0.35 "hci" is an hci paper once that
    lean is divided out. A clear answer stays."""
    from papertag.domains import refine_domain

    title, abstract = "A Study", "We report what we found."  # no cue words: only the probabilities decide
    assert refine_domain("other", title, abstract, {"other": 0.45, "hci": 0.35, "nlp": 0.2}) == "hci"
    assert refine_domain("other", title, abstract, {"other": 0.95, "hci": 0.05}) == "other"
    assert refine_domain("other", title, abstract, None) == "other"
