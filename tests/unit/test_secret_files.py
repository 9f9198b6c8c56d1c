"""Secrets from files: every secret setting can come from `<NAME>_FILE`, errors name the
setting and the file, and the hardened checks judge a secret from a file like any other."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import SECRET_SETTINGS, InsecureConfigError, SecretFileError, Settings

STRONG = "f" * 48
HARDENED = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql+psycopg://mastery@db/mastery",
    "REDIS_URL": "redis://redis:6379/0",
    "METRICS_TOKEN": "m" * 40,
    "SECRET_KEY": "s" * 48,
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No secret or secret file leaks in from the developer's shell."""
    for name in SECRET_SETTINGS:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(f"{name.upper()}_FILE", raising=False)
    monkeypatch.delenv("APP_ENV", raising=False)


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def plain(value: object) -> object:
    """The value of a setting, unwrapped when it is a SecretStr."""
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter else value


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_every_secret_setting_reads_its_value_from_the_file_named_by_name_file(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = "redis://:pa55@cache:6379/1" if name.endswith("url") else STRONG
    monkeypatch.setenv(f"{name.upper()}_FILE", str(write(tmp_path, name, value + "\n")))

    settings = Settings(_env_file=None)

    assert plain(getattr(settings, name)) == value  # the trailing newline is not part of it


def test_only_one_trailing_newline_is_dropped_and_inner_whitespace_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY_FILE", str(write(tmp_path, "key", f" {STRONG} x\n\n")))

    settings = Settings(_env_file=None)

    assert settings.secret_key.get_secret_value() == f" {STRONG} x\n"


def test_a_secret_file_named_in_the_dotenv_file_is_read_too(tmp_path: Path) -> None:
    secret = write(tmp_path, "token", "t" * 40)
    dotenv = write(tmp_path, ".env", f"METRICS_TOKEN=\nMETRICS_TOKEN_FILE={secret}\n")

    settings = Settings(_env_file=dotenv)

    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == "t" * 40


def test_setting_both_name_and_name_file_is_refused_and_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_API_KEY", "sk-from-environment")
    monkeypatch.setenv("AI_API_KEY_FILE", str(write(tmp_path, "key", "sk-from-file")))

    with pytest.raises(
        SecretFileError, match="both AI_API_KEY and AI_API_KEY_FILE are set"
    ) as raised:
        Settings(_env_file=None)

    assert "sk-from" not in str(raised.value)  # the error never carries a secret


def test_an_empty_name_next_to_name_file_counts_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRILL_TOKEN", "")  # as copied from .env.example
    monkeypatch.setenv("DRILL_TOKEN_FILE", str(write(tmp_path, "drill", "d" * 32)))

    settings = Settings(_env_file=None)

    assert settings.drill_token is not None
    assert settings.drill_token.get_secret_value() == "d" * 32


def test_an_empty_name_file_means_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_DSN_FILE", "")

    assert Settings(_env_file=None).sentry_dsn is None


def test_a_missing_secret_file_is_refused_with_the_setting_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "secret_key"
    monkeypatch.setenv("SECRET_KEY_FILE", str(missing))

    with pytest.raises(SecretFileError) as raised:
        Settings(_env_file=None)

    message = str(raised.value)
    assert f"SECRET_KEY_FILE={missing}: cannot read the file" in message
    assert "No such file or directory" in message


def test_a_directory_instead_of_a_secret_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL_FILE", str(tmp_path))

    with pytest.raises(SecretFileError, match=r"DATABASE_URL_FILE=.*cannot read the file"):
        Settings(_env_file=None)


def test_an_empty_secret_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_TOKEN_FILE", str(write(tmp_path, "token", "\n")))

    with pytest.raises(SecretFileError, match=r"METRICS_TOKEN_FILE=.*the file is empty"):
        Settings(_env_file=None)


def test_a_secret_file_that_is_not_text_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "key.bin"
    binary.write_bytes(b"\xff\xfe\x00secret")
    monkeypatch.setenv("SECRET_KEY_FILE", str(binary))

    with pytest.raises(SecretFileError, match=r"SECRET_KEY_FILE=.*not UTF-8 text"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("name", "content", "named"),
    [
        ("secret_key", "short-key", "SECRET_KEY is shorter than 32"),
        ("metrics_token", "short-token", "METRICS_TOKEN is shorter than 32"),
        ("database_url", "sqlite:///prod.db", "DATABASE_URL points at SQLite"),
        ("drill_token", "short-drill", "DRILL_TOKEN is shorter than 32"),
    ],
)
def test_production_judges_a_secret_from_a_file_like_one_from_the_environment(
    name: str, content: str, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in HARDENED.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv(f"{name.upper()}_FILE", str(write(tmp_path, name, content)))

    settings = Settings(_env_file=None)

    with pytest.raises(InsecureConfigError, match=named):
        settings.check_hardened()


def test_a_production_configuration_made_only_of_secret_files_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    for variable, value in HARDENED.items():
        if variable != "APP_ENV":
            path = write(tmp_path, variable.lower(), value + "\n")
            monkeypatch.setenv(f"{variable}_FILE", str(path))

    Settings(_env_file=None).check_hardened()


def test_the_documented_secret_list_matches_the_settings_that_accept_a_file() -> None:
    file_fields = {
        name.removesuffix("_file") for name in Settings.model_fields if name.endswith("_file")
    }
    docs = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()

    assert file_fields == set(SECRET_SETTINGS)
    for name in SECRET_SETTINGS:
        assert f"`{name.upper()}_FILE`" in docs, f"docs/deployment.md does not list {name}"


@pytest.mark.parametrize(
    ("base_url", "refused"),
    [("http://llm.internal/v1", True), ("https://llm.example/v1", False)],
)
def test_production_refuses_an_ai_key_sent_over_plain_http(
    base_url: str, refused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in HARDENED.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AI_PROVIDER", "openai")
    monkeypatch.setenv("AI_BASE_URL", base_url)

    problems = Settings(_env_file=None).insecure_settings()

    assert ("AI_BASE_URL is plain http (AI_API_KEY would travel unencrypted)" in problems) is (
        refused
    )


def test_a_secret_file_error_shows_no_other_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = "postgresql+psycopg://mastery:hunter2-db@db/mastery"  # pragma: allowlist secret
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "missing"))

    with pytest.raises(SecretFileError) as raised:
        Settings(_env_file=None)

    assert "hunter2-db" not in str(raised.value)
    assert str(raised.value).startswith("SECRET_KEY_FILE=")
