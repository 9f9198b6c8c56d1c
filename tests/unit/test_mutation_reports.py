"""tools/mutation.py, which `nox -s mutants` runs: the score, the equivalent-mutant list, the
survivor report, the diff-scoped selection, and its agreement with the pinned mutmut."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tools import mutation
from tools.mutation import (
    EquivalentListError,
    Mutant,
    changed_function_patterns,
    changed_lines,
    equivalent_problems,
    function_lines,
    functions_touching,
    load_equivalents,
    matching,
    module_of,
    mutated_line,
    prune_integration_tests,
    read_results,
    summarise,
    survivors,
    survivors_markdown,
    verdict,
)

TOKENS = "app/auth/tokens.py"


def mutant(number: int, status: str, path: str = TOKENS, function: str = "x_issue") -> Mutant:
    return Mutant(f"{module_of(path)}.{function}__mutmut_{number}", path, status)


def equivalent(name: str) -> dict[str, mutation.Equivalent]:
    return {name: mutation.Equivalent(name, "no caller can observe the difference")}


# --- the score ---------------------------------------------------------------------------------


def test_the_score_is_killed_over_killed_plus_survived_per_module_and_overall() -> None:
    found = [
        mutant(1, "killed"),
        mutant(2, "killed"),
        mutant(3, "killed"),
        mutant(4, "survived"),
        mutant(1, "killed", path="app/adaptive/irt.py"),
    ]
    summary = summarise(found, {})
    assert summary["score"] == 0.8
    assert summary["modules"][TOKENS]["score"] == 0.75
    assert summary["modules"][TOKENS]["killed"] == 3
    assert summary["modules"][TOKENS]["survived"] == 1
    assert summary["modules"]["app/adaptive/irt.py"]["score"] == 1.0


def test_a_mutant_no_test_reaches_counts_as_a_survivor() -> None:
    summary = summarise([mutant(1, "killed"), mutant(2, "no tests")], {})
    assert summary["modules"][TOKENS]["survived"] == 1
    assert summary["modules"][TOKENS]["no_tests"] == 1
    assert summary["score"] == 0.5


def test_timeouts_are_counted_apart_and_outside_the_score() -> None:
    summary = summarise([mutant(1, "killed"), mutant(2, "timeout"), mutant(3, "survived")], {})
    assert summary["modules"][TOKENS]["timeout"] == 1
    assert summary["score"] == 0.5


def test_listed_equivalent_survivors_are_counted_apart_and_outside_the_score() -> None:
    found = [mutant(1, "killed"), mutant(2, "survived")]
    summary = summarise(found, equivalent(found[1].name))
    assert summary["modules"][TOKENS]["equivalent"] == 1
    assert summary["modules"][TOKENS]["survived"] == 0
    assert summary["score"] == 1.0
    assert survivors(found, equivalent(found[1].name)) == []


def test_mutants_the_run_did_not_check_are_left_out() -> None:
    summary = summarise([mutant(1, "killed"), mutant(2, "not checked")], {})
    assert summary["modules"][TOKENS]["killed"] == 1
    assert summary["modules"][TOKENS]["survived"] == 0


def test_a_module_with_nothing_to_score_has_no_score() -> None:
    assert summarise([mutant(1, "timeout")], {})["modules"][TOKENS]["score"] is None
    assert summarise([], {})["score"] is None


def test_exit_codes_read_as_mutmut_reads_them() -> None:
    from mutmut.stats import status_by_exit_code

    for code, status in mutation.STATUS_BY_EXIT_CODE.items():
        assert status_by_exit_code[code] == status
    assert mutation.status_of(-11) == "other"  # segfault
    assert mutation.status_of(35) == "other"  # suspicious


def test_results_are_read_from_mutmuts_meta_files(tmp_path: Path) -> None:
    meta = tmp_path / "app/auth/tokens.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"app.auth.tokens.x_issue__mutmut_10": 0, "app.auth.tokens.x_issue__mutmut_2": 1}
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    found = read_results([TOKENS, "app/auth/keys.py"], tmp_path)
    assert found == [mutant(2, "killed"), mutant(10, "survived")]


def test_a_threshold_fails_each_module_under_it_or_the_overall_score() -> None:
    summary = summarise(
        [mutant(1, "killed"), mutant(2, "survived"), mutant(1, "killed", "app/adaptive/irt.py")],
        {},
    )
    assert verdict(summary, 90, per_module=True) == [
        f"{TOKENS}: mutation score 50.0 % is under 90 %"
    ]
    assert verdict(summary, 60, per_module=False) == []
    assert verdict(summary, 90, per_module=False) == ["mutation score 66.7 % is under 90 %"]
    assert verdict(summary, None, per_module=True) == []


# --- the equivalent-mutant list ----------------------------------------------------------------


def test_equivalent_entries_need_a_name_and_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "equivalent.toml"
    path.write_text('[[mutant]]\nname = "app.x.x_f__mutmut_1"\nreason = "because"\n')
    with pytest.raises(EquivalentListError, match="reason"):
        load_equivalents(path)
    path.write_text('[[mutant]]\nreason = "the value is never read"\n')
    with pytest.raises(EquivalentListError, match="name"):
        load_equivalents(path)


def test_an_equivalent_listed_twice_is_refused(tmp_path: Path) -> None:
    entry = '[[mutant]]\nname = "app.x.x_f__mutmut_1"\nreason = "the value is never read"\n'
    path = tmp_path / "equivalent.toml"
    path.write_text(entry + entry)
    with pytest.raises(EquivalentListError, match="twice"):
        load_equivalents(path)


def test_the_committed_equivalent_list_is_well_formed() -> None:
    entries = load_equivalents(mutation.ROOT / mutation.EQUIVALENT_FILE)
    assert all(entry.reason for entry in entries.values())


def test_an_entry_naming_no_mutant_is_stale_and_one_that_is_killed_is_wrong() -> None:
    found = [mutant(1, "killed"), mutant(2, "survived")]
    listed = {
        **equivalent(found[0].name),
        **equivalent(found[1].name),
        **equivalent("app.auth.tokens.x_gone__mutmut_1"),
    }
    problems = equivalent_problems(listed, found)
    assert len(problems) == 2
    stale, killed = problems  # sorted by name: x_gone before x_issue
    assert "stale entry" in stale
    assert "x_gone__mutmut_1" in stale
    assert "a test kills it" in killed
    assert found[0].name in killed


# --- the survivor report -----------------------------------------------------------------------

SOURCE = textwrap.dedent("""\
    import math


    def issue(a):
        b = a + 1
        return b * 2


    class Keyring:
        @staticmethod
        def get(key):
            return key
    """)

DIFF = """\
--- app/auth/tokens.py
+++ app/auth/tokens.py
@@ -1,3 +1,3 @@
 def issue(a):
     b = a + 1
-    return b * 2
+    return b / 2"""


def test_function_lines_name_functions_and_methods_as_mutmut_does() -> None:
    assert function_lines(SOURCE) == {"x_issue": 4, "xǁKeyringǁget": 11}


def test_the_mutated_line_is_the_def_line_plus_the_offset_in_the_diff() -> None:
    assert mutated_line(DIFF, def_line=4) == 6
    inserted = "@@ -2,1 +2,2 @@\n     b = a + 1\n+    b = None"
    assert mutated_line(inserted, def_line=10) == 12
    assert mutated_line("no diff", def_line=4) is None


def test_the_survivor_report_gives_module_function_line_and_diff() -> None:
    found = [mutant(3, "survived"), mutant(4, "no tests")]
    text = survivors_markdown(found, lambda m: DIFF, {TOKENS: function_lines(SOURCE)})
    assert "## app/auth/tokens.py" in text
    assert "### `app.auth.tokens.x_issue__mutmut_3`" in text
    assert "`issue`, line 6" in text
    assert "(no test reaches it)" in text
    assert "-    return b * 2\n+    return b / 2" in text


def test_an_empty_survivor_report_says_so() -> None:
    assert "None:" in survivors_markdown([], lambda m: "", {})


# --- diff-scoped runs --------------------------------------------------------------------------

GIT_DIFF = """\
diff --git a/app/auth/tokens.py b/app/auth/tokens.py
--- a/app/auth/tokens.py
+++ b/app/auth/tokens.py
@@ -5 +5 @@ def issue(a):
-    b = a
+    b = a + 1
@@ -13,0 +14,2 @@ class Keyring:
+# new
+# lines
diff --git a/app/auth/keys.py b/app/auth/keys.py
--- a/app/auth/keys.py
+++ b/app/auth/keys.py
@@ -7,2 +6,0 @@ def rotate():
-    x
-    y
diff --git a/app/old.py b/app/old.py
--- a/app/old.py
+++ /dev/null
@@ -1 +0,0 @@
-gone
"""


def test_changed_lines_come_from_the_new_side_of_each_hunk() -> None:
    assert changed_lines(GIT_DIFF) == {
        "app/auth/tokens.py": {5, 14, 15},
        "app/auth/keys.py": {6, 7},  # a deletion touches both sides of where it was
    }


def test_changed_lines_map_to_functions_and_methods_decorators_included() -> None:
    assert functions_touching(SOURCE, {5}) == {"x_issue"}
    assert functions_touching(SOURCE, {10}) == {"xǁKeyringǁget"}  # the decorator line
    assert functions_touching(SOURCE, {1, 2, 9}) == set()  # imports, blank, class line


def test_changed_functions_become_mutmut_name_globs_in_scope_only() -> None:
    sources = {TOKENS: SOURCE, "app/auth/keys.py": "def rotate():\n    x = 1\n"}
    patterns = changed_function_patterns(GIT_DIFF, [TOKENS], sources.__getitem__)
    assert patterns == ["app.auth.tokens.x_issue__mutmut_*"]
    names = ["app.auth.tokens.x_issue__mutmut_1", "app.auth.tokens.x_issued__mutmut_1"]
    assert matching(names, patterns) == names[:1]


def test_a_package_init_is_named_after_the_package() -> None:
    assert module_of("app/security/__init__.py") == "app.security"
    assert module_of("app/auth/tokens.py") == "app.auth.tokens"


# --- which tests kill which mutants ------------------------------------------------------------


def test_pure_modules_lose_their_integration_tests_and_the_rest_keep_them() -> None:
    stats = {
        "tests_by_mangled_function_name": {
            "app.adaptive.irt.x_logit": [
                "tests/unit/adaptive/test_irt.py::test_a",
                "tests/integration/test_learning.py::test_b",
            ],
            "app.auth.tokens.x_issue": ["tests/integration/test_auth_tokens.py::test_c"],
        }
    }
    assert prune_integration_tests(stats) == 1
    assert stats["tests_by_mangled_function_name"] == {
        "app.adaptive.irt.x_logit": ["tests/unit/adaptive/test_irt.py::test_a"],
        "app.auth.tokens.x_issue": ["tests/integration/test_auth_tokens.py::test_c"],
    }


def test_the_mutmut_functions_the_runner_relies_on_exist() -> None:
    import mutmut.__main__ as mutmut_main
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    for name in ("collect_or_load_stats", "copy_src_dir", "copy_also_copy_files", "create_mutants"):
        assert callable(getattr(mutmut_main, name))
    assert callable(get_diff_for_mutant)


def test_the_scope_is_the_configured_modules_without_the_simulation_cli() -> None:
    files = mutation.scope_files(mutation.mutmut_config())
    assert "app/auth/tokens.py" in files
    assert "app/learning/scoring.py" in files
    assert "app/adaptive/simulate.py" not in files
    assert not [f for f in files if f.startswith("app/content/")]
