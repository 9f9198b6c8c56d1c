"""The offline provider: deterministic, no keys, no network, and still useful.

Items are drafted from the skill's own sentences and keywords, grading is keyword coverage of
the rubric and reference answer, hints name a rubric keyword (or only the first letter of a
one-word answer). Grading feedback names no word of the answer key, not even the learner's
own: naming the next missing keyword, or which of the learner's words counted, let a learner
collect the key over a few attempts (issue 17). The same input always gives the same output.
"""

from __future__ import annotations

import re

from app.ai.models import (
    GeneratedItems,
    GradeResult,
    GradingRequest,
    Hint,
    HintRequest,
    ItemDraft,
    SkillBrief,
)
from app.ai.text import keywords, ranked_keywords, sentences, stable_hash, words

PROVIDER_NAME = "offline"
TEMPLATE_VERSION = 1
PASS_MARK = 0.6
FALLBACK_DISTRACTORS = ("definition", "example", "exception", "procedure", "principle")


class OfflineProvider:
    """Rule-based implementation of `Provider`."""

    name = PROVIDER_NAME

    def generate_items(self, skill: SkillBrief, count: int) -> GeneratedItems:
        source = "\n".join(filter(None, (skill.description, skill.material))) or skill.name
        pool = sentences(source) or [f"{skill.name} is the skill being practised."]
        vocabulary = ranked_keywords(source + " " + skill.name) or list(FALLBACK_DISTRACTORS)
        items = []
        for index in range(max(count, 0)):
            seed = stable_hash(skill.skill_id, index)
            sentence = pool[seed % len(pool)]
            if index % 2 == 0:
                items.append(_mcq(sentence, vocabulary, seed))
            else:
                items.append(_short_answer(skill.name, sentence, seed))
        return GeneratedItems(
            items=items,
            provider=PROVIDER_NAME,
            template="offline.generate_items",
            template_version=TEMPLATE_VERSION,
        )

    def grade_short_answer(self, item: GradingRequest) -> GradeResult:
        expected = keywords(" ".join([item.reference_answer, *item.rubric]))
        given = set(words(item.response))
        covered = [word for word in expected if word in given]
        if words(item.reference_answer) and words(item.response) == words(item.reference_answer):
            score = 1.0
        elif expected:
            score = round(len(covered) / len(expected), 3)
        else:
            score = 0.0
        correct = score >= PASS_MARK
        if correct:
            feedback = "Correct: your answer covers the key ideas."
        elif covered:
            feedback = "Partly right: your answer has some of the key ideas; something is missing."
        else:
            feedback = "Not yet: your answer does not mention the key ideas of the question."
        return GradeResult(
            score=score,
            correct=correct,
            feedback=feedback,
            provider=PROVIDER_NAME,
            template="offline.grade_short_answer",
            template_version=TEMPLATE_VERSION,
        )

    def hint(self, item: HintRequest) -> Hint:
        candidates = keywords(" ".join(item.rubric)) or keywords(item.reference_answer)
        if candidates:
            keyword = candidates[stable_hash(item.item_id) % len(candidates)]
            text = f"Think about {_hint_for(keyword, item.reference_answer)}."
        else:
            text = "Re-read the question and name the key idea it asks about."
        return Hint(
            hint=text,
            provider=PROVIDER_NAME,
            template="offline.hint",
            template_version=TEMPLATE_VERSION,
        )


def _hint_for(keyword: str, reference_answer: str) -> str:
    """Name `keyword`, unless naming it would give the whole answer away."""
    if words(reference_answer) == [keyword] or keywords(reference_answer) == [keyword]:
        return _initial_letter(keyword).rstrip(".").lower()
    return f'"{keyword}"'


def _initial_letter(word: str) -> str:
    return f"A word that starts with '{word[0]}' and has {len(word)} letters."


def _mcq(sentence: str, vocabulary: list[str], seed: int) -> ItemDraft:
    in_sentence = keywords(sentence)
    answer = in_sentence[seed % len(in_sentence)] if in_sentence else vocabulary[0]
    others = [word for word in vocabulary if word != answer and word not in in_sentence]
    others += [word for word in FALLBACK_DISTRACTORS if word != answer and word not in others]
    choices = [answer, *others[:3]]
    # Rotate deterministically so the key is not always first.
    shift = seed % len(choices)
    choices = choices[shift:] + choices[:shift]
    blanked = re.sub(rf"\b{re.escape(answer)}\b", "_____", sentence, flags=re.IGNORECASE)
    return ItemDraft(
        kind="mcq",
        stem=f"Which word completes the statement? {blanked}",
        choices=choices,
        answer_index=choices.index(answer),
        reference_answer=None,
        rubric=[],
    )


def _short_answer(skill_name: str, sentence: str, seed: int) -> ItemDraft:
    ranked = ranked_keywords(sentence)
    focus = ranked[seed % len(ranked)] if ranked else skill_name
    rubric_words = [word for word in ranked if word != focus][:3] or [focus]
    return ItemDraft(
        kind="short_answer",
        stem=f'In the context of {skill_name}, explain what "{focus}" means or does.',
        choices=[],
        answer_index=None,
        reference_answer=sentence,
        rubric=[f"mentions {word}" for word in rubric_words],
    )
