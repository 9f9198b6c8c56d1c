"""Next-item selection: maximum information, top-k exposure control, exclusions, seeding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.adaptive.irt import information
from app.adaptive.selection import (
    DEFAULT_TOP_K,
    ItemBank,
    select_item,
    select_random_item,
)
from tests.unit.adaptive.strategies import FAST, abilities, difficulties, discriminations

banks = st.lists(st.tuples(discriminations, difficulties), min_size=1, max_size=40).map(
    lambda rows: ItemBank.from_items((f"item-{i}", a, b) for i, (a, b) in enumerate(rows))
)


def make_bank(size: int, seed: int = 0) -> ItemBank:
    rng = np.random.default_rng(seed)
    return ItemBank(
        ids=tuple(f"item-{i}" for i in range(size)),
        a=rng.uniform(0.5, 2.5, size),
        b=rng.uniform(-3.0, 3.0, size),
    )


@FAST
@given(
    bank=banks,
    theta=abilities,
    k=st.integers(min_value=1, max_value=8),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    data=st.data(),
)
def test_selection_never_returns_an_excluded_item(
    bank: ItemBank, theta: float, k: int, seed: int, data: st.DataObject
) -> None:
    excluded = data.draw(st.sets(st.sampled_from(bank.ids)))
    rng = np.random.default_rng(seed)

    chosen = select_item(bank, theta, rng, k=k, excluded=excluded)

    if len(excluded) == len(bank):
        assert chosen is None
    else:
        assert chosen is not None
        assert chosen in bank.ids
        assert chosen not in excluded


@FAST
@given(
    bank=banks,
    thetas=st.lists(abilities, min_size=1, max_size=10),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_the_same_seed_gives_the_same_choices(
    bank: ItemBank, thetas: list[float], seed: int
) -> None:
    def choices() -> list[str | None]:
        rng = np.random.default_rng(seed)
        seen: list[str] = []
        picked: list[str | None] = []
        for theta in thetas:
            item = select_item(bank, theta, rng, excluded=frozenset(seen[-3:]))
            picked.append(item)
            if item is not None:
                seen.append(item)
        return picked

    assert choices() == choices()


@FAST
@given(bank=banks, theta=abilities, seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_with_k_one_the_most_informative_item_is_chosen(
    bank: ItemBank, theta: float, seed: int
) -> None:
    info = information(theta, bank.a, bank.b)

    chosen = select_item(bank, theta, np.random.default_rng(seed), k=1)

    assert chosen is not None
    assert info[bank.ids.index(chosen)] == info.max()


def test_choices_spread_over_exactly_the_top_k_items() -> None:
    bank = make_bank(200)
    info = information(0.4, bank.a, bank.b)
    top = {bank.ids[i] for i in np.argsort(info)[-DEFAULT_TOP_K:]}
    rng = np.random.default_rng(7)

    chosen = {select_item(bank, 0.4, rng) for _ in range(300)}

    assert chosen == top


def test_the_top_k_skips_excluded_items() -> None:
    bank = make_bank(50)
    order = [bank.ids[i] for i in np.argsort(information(0.0, bank.a, bank.b))[::-1]]
    excluded = set(order[:3])
    rng = np.random.default_rng(1)

    chosen = {select_item(bank, 0.0, rng, k=2, excluded=excluded) for _ in range(100)}

    assert chosen == set(order[3:5])


def test_fewer_items_left_than_k_are_all_candidates() -> None:
    bank = make_bank(6)
    excluded = set(bank.ids[:4])
    rng = np.random.default_rng(3)

    chosen = {select_item(bank, 0.0, rng, k=5, excluded=excluded) for _ in range(100)}

    assert chosen == set(bank.ids[4:])


def test_when_every_item_is_excluded_there_is_no_next_item() -> None:
    bank = make_bank(5)
    rng = np.random.default_rng(0)

    assert select_item(bank, 0.0, rng, excluded=set(bank.ids)) is None
    assert select_random_item(bank, rng, excluded=set(bank.ids)) is None


def test_an_empty_bank_has_no_next_item() -> None:
    bank = ItemBank.from_items([])
    rng = np.random.default_rng(0)

    assert len(bank) == 0
    assert select_item(bank, 0.0, rng) is None
    assert select_random_item(bank, rng) is None


def test_excluded_ids_that_are_not_in_the_bank_are_ignored() -> None:
    bank = make_bank(3)

    chosen = select_item(bank, 0.0, np.random.default_rng(0), k=1, excluded={"elsewhere"})

    assert chosen == select_item(bank, 0.0, np.random.default_rng(0), k=1)


def test_k_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="k must be"):
        select_item(make_bank(3), 0.0, np.random.default_rng(0), k=0)


@FAST
@given(bank=banks, seed=st.integers(min_value=0, max_value=2**32 - 1), data=st.data())
def test_random_selection_never_returns_an_excluded_item(
    bank: ItemBank, seed: int, data: st.DataObject
) -> None:
    excluded = data.draw(st.sets(st.sampled_from(bank.ids), max_size=len(bank) - 1))

    chosen = select_random_item(bank, np.random.default_rng(seed), excluded=excluded)

    assert chosen in bank.ids
    assert chosen not in excluded


def test_a_bank_rejects_duplicate_ids_misaligned_ids_and_parameters_out_of_range() -> None:
    with pytest.raises(ValueError, match="unique"):
        ItemBank.from_items([("x", 1.0, 0.0), ("x", 1.0, 0.5)])
    with pytest.raises(ValueError, match="ids for"):
        ItemBank(ids=("x",), a=np.ones(2), b=np.zeros(2))
    with pytest.raises(ValueError, match="discrimination"):
        ItemBank.from_items([("x", 0.1, 0.0)])


def test_a_bank_is_read_only_and_maps_ids_to_positions() -> None:
    bank = ItemBank.from_items([("x", 1.0, 0.0), ("y", 2.0, 1.0)])

    assert bank.positions(["y", "missing", "x"]).tolist() == [1, 0]
    with pytest.raises(ValueError, match="read-only"):
        bank.b[0] = 3.0
