"""Grading feedback is no oracle for the answer key (issue 17, finding 2).

The property: whatever the answer, the reference and the rubric, and whichever path graded it
(the offline provider, a model's free-text feedback, the rules-based fallback), the feedback a
learner gets contains no keyword of the reference answer or the rubric that the learner did
not write. Keywords are compared as the learner would read them: case, accents, punctuation
and a plural `s` make no difference; stopwords ("the", "of") are not keywords.
"""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from app.ai import AIProviderError, GradingRequest
from app.ai.models import GradeResult
from app.ai.offline import OfflineProvider
from app.ai.text import STOPWORDS
from app.learning.scoring import FEEDBACK_MAX_CHARS, grade_short_answer

# A small vocabulary, so answers, references and feedback share words often; with case and
# accent variants and plurals, which must not slip a keyword past the check.
VOCABULARY = [
    "chlorophyll",
    "Chlorophyll",
    "CHLOROPHYLLS",
    "light",
    "lights",
    "red",
    "blue",
    "café",
    "cafe",
    "answer",
    "question",
    "correct",
    "key",
    "ideas",
    "mitochondria",
    "42",
    "the",
    "of",
    "and",
]
WORD = st.one_of(
    st.sampled_from(VOCABULARY),
    st.text(alphabet="abcdeéfghilmnoprstu", min_size=1, max_size=9),
)
TEXT = st.lists(WORD, max_size=12).map(" ".join)
PUNCTUATED = st.lists(
    st.tuples(WORD, st.sampled_from([" ", ", ", ". ", " - ", "; ", "!"])), max_size=15
).map(lambda parts: "".join(word + gap for word, gap in parts))


def _tokens(text: str) -> set[str]:
    plain = "".join(
        c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c)
    )
    return {
        token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token
        for token in re.findall(r"\w+", plain)
        if token not in STOPWORDS
    }


def unwritten_key_words(feedback: str, request: GradingRequest) -> set[str]:
    key = _tokens(" ".join([request.reference_answer, *request.rubric]))
    return _tokens(feedback) & (key - _tokens(request.response))


class ModelProvider(OfflineProvider):
    """A model whose free-text feedback is whatever the strategy drew (it may quote the key);
    only its grading is asked for (the rest of the Provider interface is the offline one's)."""

    name = "openai"

    def __init__(self, feedback: str, correct: bool) -> None:
        self.feedback, self.correct = feedback, correct

    def grade_short_answer(self, item: GradingRequest) -> GradeResult:
        return GradeResult(
            score=1.0 if self.correct else 0.2,
            correct=self.correct,
            feedback=self.feedback,
            provider="openai",
            template="grade_short_answer",
            template_version=1,
        )


class BrokenProvider(OfflineProvider):
    name = "openai"

    def grade_short_answer(self, item: GradingRequest) -> GradeResult:
        raise AIProviderError("the provider is down")


requests = st.builds(
    GradingRequest,
    item_id=st.just("item-1"),
    stem=st.just("What does chlorophyll do?"),
    reference_answer=TEXT,
    rubric=st.lists(TEXT.map(lambda text: f"mentions {text}"), max_size=3),
    response=TEXT,
)


@settings(max_examples=150, deadline=None)
@given(request=requests)
def test_offline_feedback_never_names_a_key_word_the_learner_did_not_write(
    request: GradingRequest,
) -> None:
    grade = grade_short_answer(OfflineProvider(), request)

    assert not unwritten_key_words(grade.feedback, request), grade.feedback


@settings(max_examples=150, deadline=None)
@given(
    request=requests,
    data=st.data(),
    correct=st.booleans(),
)
def test_model_feedback_never_passes_on_a_key_word_the_learner_did_not_write(
    request: GradingRequest, data: st.DataObject, correct: bool
) -> None:
    key_words = (request.reference_answer + " " + " ".join(request.rubric)).split()
    quoted = st.sampled_from(key_words).map(lambda w: w.upper()) if key_words else WORD
    feedback = data.draw(
        st.lists(st.one_of(WORD, quoted), max_size=20).map(" ".join) | PUNCTUATED,
        label="feedback",
    )

    grade = grade_short_answer(ModelProvider(feedback, correct), request)

    assert not unwritten_key_words(grade.feedback, request), grade.feedback
    assert grade.correct is correct
    assert grade.graded_by == "openai"
    assert len(grade.feedback) <= FEEDBACK_MAX_CHARS


@settings(max_examples=50, deadline=None)
@given(request=requests)
def test_fallback_feedback_never_names_a_key_word_the_learner_did_not_write(
    request: GradingRequest,
) -> None:
    grade = grade_short_answer(BrokenProvider(), request)

    assert grade.graded_by == "fallback"
    assert not unwritten_key_words(grade.feedback, request), grade.feedback


def test_feedback_the_learner_could_have_written_is_kept() -> None:
    request = GradingRequest(
        item_id="i",
        stem="?",
        reference_answer="Chlorophyll absorbs red and blue light.",
        rubric=["mentions photosynthesis"],
        response="chlorophylls absorb light",
    )
    kept = "Good: chlorophyll and light are right; say which colours."

    assert grade_short_answer(ModelProvider(kept, False), request).feedback == kept


def test_feedback_naming_a_missing_key_word_in_any_form_is_replaced() -> None:
    request = GradingRequest(
        item_id="i",
        stem="?",
        reference_answer="Le café est noir.",
        rubric=[],
        response="noir",
    )

    for leaky in ("Think about CAFE.", "Think about cafés", "think about 'Café'"):
        feedback = grade_short_answer(ModelProvider(leaky, False), request).feedback
        assert feedback.startswith("Not quite"), leaky


def test_long_feedback_is_cut_at_a_word_boundary() -> None:
    request = GradingRequest(
        item_id="i", stem="?", reference_answer="osmosis", rubric=[], response="osmosis"
    )

    feedback = grade_short_answer(ModelProvider("well done " * 100, True), request).feedback

    assert len(feedback) <= FEEDBACK_MAX_CHARS
    assert feedback.endswith("\u2026")
    assert feedback[:-1].split()[-1] in ("well", "done")  # whole words only


def test_when_even_the_fixed_sentence_would_name_the_key_a_symbol_is_all_that_is_said() -> None:
    request = GradingRequest(
        item_id="i", stem="?", reference_answer="question answer", rubric=[], response="x"
    )

    assert grade_short_answer(ModelProvider("answer", False), request).feedback == "\u2717"
