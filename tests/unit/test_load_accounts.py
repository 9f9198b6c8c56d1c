"""Which seeded account each simulated user logs in as (load/accounts.py): every Locust process
of a run owns a share of each role's accounts that no other process touches, and a process
whose share is too small fails loudly instead of sharing an account."""

from __future__ import annotations

import pytest

from load.accounts import AccountPool, AccountsExhausted, Partition

# The pools the load stack seeds (load/run.py), and the seed command's default admins.
POOLS = {"learner": 1000, "instructor": 20, "admin": 20}


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7, 10])
@pytest.mark.parametrize(("role", "population"), sorted(POOLS.items()))
def test_worker_shares_are_disjoint_and_cover_the_whole_pool(
    role: str, population: int, workers: int
) -> None:
    shares = [set(Partition(i, workers).share(population)) for i in range(workers)]

    assert sum(len(share) for share in shares) == population
    assert set().union(*shares) == set(range(population))


def test_distributed_workers_log_in_as_distinct_accounts_of_every_role() -> None:
    # 4 workers, each running the users a 150-user spike gives it: no account twice, any role.
    workers = 4
    per_worker = {"learner": 34, "instructor": 3, "admin": 1}
    used: dict[str, list[int]] = {role: [] for role in POOLS}
    for index in range(workers):
        for role, users in per_worker.items():
            pool = AccountPool(role, POOLS[role], Partition(index, workers))
            used[role] += [pool.acquire() for _ in range(users)]

    for role, numbers in used.items():
        assert len(numbers) == len(set(numbers)), f"{role} accounts shared between users"


def test_two_workers_get_different_admins_where_the_old_offset_wrapped_to_the_same() -> None:
    # worker_index x 1000 modulo 20 admins was admin 0 for every worker.
    first = AccountPool("admin", 20, Partition(0, 2)).acquire()
    second = AccountPool("admin", 20, Partition(1, 2)).acquire()

    assert (first, second) == (0, 10)


def test_a_share_too_small_for_its_users_fails_loudly_naming_the_seed_option() -> None:
    pool = AccountPool("instructor", 20, Partition(1, 4))  # instructors 5-9
    assert [pool.acquire() for _ in range(5)] == [5, 6, 7, 8, 9]

    with pytest.raises(AccountsExhausted) as failure:
        pool.acquire()

    message = str(failure.value)
    assert "worker 1 of 4" in message
    assert "instructor accounts 5-9 (5 of the 20 seeded)" in message
    assert "--courses N" in message
    assert "LOAD_INSTRUCTORS=N" in message


def test_more_workers_than_accounts_leaves_a_worker_none_and_it_says_so() -> None:
    pool = AccountPool("admin", 2, Partition(0, 3))  # shares: none, admin 0, admin 1

    with pytest.raises(AccountsExhausted, match="2 admin accounts seeded leave it none"):
        pool.acquire()


def test_a_stopped_users_account_is_reused_before_a_new_one() -> None:
    pool = AccountPool("learner", 10)
    numbers = [pool.acquire() for _ in range(3)]

    pool.release(numbers[1])
    pool.release(numbers[1])  # a second release of the same account changes nothing

    assert pool.acquire() == 1
    assert pool.acquire() == 3
    assert pool.in_use == 4


def test_a_worker_index_beyond_the_count_the_test_started_with_is_refused() -> None:
    with pytest.raises(AccountsExhausted, match="joins a running test"):
        Partition(3, 3)
