"""Deterministic pseudonyms: the same input under the same key always gives the same output.

Each pseudonym is derived from HMAC-SHA256(key, kind + value). The digest seeds a private
Faker instance for realistic shapes (names, phone numbers); e-mails also carry 12 hex digits
of the digest, so distinct addresses stay distinct (48 bits: collisions are negligible for
millions of users) and the unique index on users.email still holds.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from faker import Faker

MIN_KEY_LENGTH = 16
SAFE_DOMAINS = ("example.com", "example.net", "example.org")  # RFC 2606: never deliverable

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# A phone number: +country or (area) or at least three digit groups, 7-15 digits in all, or a
# 10-15 digit run starting with 0. Dates and times are excluded by `_looks_like_date`.
PHONE = re.compile(
    r"(?<![\w.+-])(?:\+\d[\d\s().-]{5,}\d|\(\d{1,5}\)[\s.-]?\d[\d\s.-]{4,}\d"
    r"|\d{1,5}(?:[\s.-]\d{1,5}){2,}|0\d{9,14})(?![\w-])"
)
DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")


class AnonymizeKeyError(ValueError):
    """ANONYMIZE_KEY is missing or too short."""


def _digits(text: str) -> int:
    return sum(char.isdigit() for char in text)


class Pseudonymizer:
    """Every pseudonym function, bound to one key."""

    def __init__(self, key: str) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise AnonymizeKeyError(
                f"ANONYMIZE_KEY must have at least {MIN_KEY_LENGTH} characters "
                "(a short key lets anyone test guessed e-mails against the pseudonyms)"
            )
        self._key = key.encode()
        self._faker = Faker("en_US")
        # The same user shows up in many rows (audit log, attempts...): seeding Faker is the
        # slow part, so each distinct value is derived once per run.
        self._emails: dict[str, str] = {}
        self._names: dict[str, str] = {}

    def digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def _seeded(self, kind: str, value: str) -> Faker:
        self._faker.seed_instance(int.from_bytes(self.digest(kind, value)[:8], "big"))
        return self._faker

    def email(self, value: str) -> str:
        found = self._emails.get(value)
        if found is None:
            found = self._emails[value] = self._email(value)
        return found

    def _email(self, value: str) -> str:
        # The app stores e-mails lower-cased; folding here maps A@x and a@x to one pseudonym.
        normal = value.strip().lower()
        tag = self.digest("email", normal).hex()[:12]
        faker = self._seeded("email", normal)
        first, last = faker.first_name().lower(), faker.last_name().lower()
        domain = SAFE_DOMAINS[self.digest("email-domain", normal)[0] % len(SAFE_DOMAINS)]
        local = re.sub(r"[^a-z0-9.]", "", f"{first}.{last}")[:40] or "user"
        return f"{local}.{tag}@{domain}"

    def name(self, value: str) -> str:
        found = self._names.get(value)
        if found is None:
            found = self._names[value] = self._name(value)
        return found

    def _name(self, value: str) -> str:
        if not value.strip():
            return value
        return str(self._seeded("name", value.strip()).name())

    def ip(self, value: str) -> str:
        """IPv4 → 10.x.y.z, IPv6 → fd00::/8; addresses of one /24 (/48) share a network
        part, so per-network distributions survive. Anything else becomes an opaque token."""
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return self.opaque(value)
        if isinstance(address, ipaddress.IPv4Address):
            network = str(ipaddress.ip_network(f"{address}/24", strict=False))
            net, host = self.digest("ip-net", network), self.digest("ip", str(address))
            return f"10.{net[0]}.{net[1]}.{host[0]}"
        network = str(ipaddress.ip_network(f"{address}/48", strict=False))
        net, host = self.digest("ip-net", network), self.digest("ip", str(address))
        return str(ipaddress.IPv6Address(b"\xfd" + net[:5] + host[:10]))

    def phone(self, value: str) -> str:
        digits = "".join(char for char in value if char.isdigit())
        return str(self._seeded("phone", digits).numerify("+1-555-###-####"))

    def opaque(self, value: str, length: int = 24) -> str:
        """An identifier-shaped pseudonym (idempotency keys, token ids): unique per input."""
        return "anon-" + self.digest("opaque", value).hex()[:length]

    def request_id(self, value: str) -> str:
        """A request id's pseudonym, `req-` and 32 hex digits (128 bits: distinct ids stay
        distinct): still a well-formed X-Request-ID, and short enough for every column that
        holds one."""
        return "req-" + self.digest("request-id", value).hex()[:32]

    # --- free text ----------------------------------------------------------------------

    def scrub_text(self, text: str, known_names: NameIndex | None = None) -> str:
        """Replace e-mail addresses, IPv4 addresses and phone numbers (and known users'
        names) in `text`."""
        text = EMAIL.sub(lambda match: self.email(match.group(0)), text)
        text = self.scrub_ips(text)
        text = PHONE.sub(self._phone_match, text)
        if known_names is not None:
            text = known_names.replace(text, self.name)
        return text

    def _phone_match(self, match: re.Match[str]) -> str:
        found = match.group(0)
        digits = _digits(found)
        if digits < 7 or digits > 15 or DATE_LIKE.match(found.strip()) or IPV4.fullmatch(found):
            return found  # too short or long, a date, or an (already pseudonymised) address
        return self.phone(found)

    def scrub_ips(self, text: str) -> str:
        return IPV4.sub(lambda match: self._ip_match(match.group(0)), text)

    def _ip_match(self, found: str) -> str:
        try:
            ipaddress.IPv4Address(found)
        except ValueError:
            return found
        return self.ip(found)

    def scrub_json(
        self, value: Any, known_names: NameIndex | None = None, *, field: str = ""
    ) -> Any:
        """Walk a JSON value: keys that name personal data get the matching pseudonym, every
        other string is scrubbed as free text. Keys, numbers, booleans and shape are kept."""
        if isinstance(value, dict):
            return {k: self.scrub_json(v, known_names, field=str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_json(v, known_names, field=field) for v in value]
        if isinstance(value, str):
            rule = field_rule(field)
            if rule == "email":
                return self.email(value)
            if rule == "ip":
                return self.ip(value)
            if rule == "name":
                return self.name(value)
            if rule == "opaque":
                return self.opaque(value)
            if rule == "request_id":
                return self.request_id(value)
            return self.scrub_text(value, known_names)
        return value


PERSONAL_FIELDS = {
    "email": "email",
    "e_mail": "email",
    "user_email": "email",
    "ip": "ip",
    "client_ip": "ip",
    "remote_addr": "ip",
    "remote_ip": "ip",
    "x_forwarded_for": "ip",
    "display_name": "name",
    "full_name": "name",
    "name_of_user": "name",
    "jti": "opaque",
    "request_id": "request_id",
    "x_request_id": "request_id",
}


def field_rule(field: str) -> str | None:
    return PERSONAL_FIELDS.get(field.lower().replace("-", "_"))


class NameIndex:
    """Known personal names (every user's display name): found in free text by word n-grams,
    so the cost does not grow with the number of users the way a giant regex would."""

    WORD = re.compile(r"\w+", re.UNICODE)
    MIN_LENGTH = 4  # shorter names ("Al", "Jo") would rewrite ordinary words

    def __init__(self, names: list[str]) -> None:
        self.names: dict[tuple[str, ...], str] = {}
        for name in names:
            words = tuple(word.casefold() for word in self.WORD.findall(name))
            if words and len(name.strip()) >= self.MIN_LENGTH:
                self.names[words] = name
        self.longest = max((len(words) for words in self.names), default=0)

    def replace(self, text: str, pseudonym: Callable[[str], str]) -> str:
        if not self.names:
            return text
        spans = [(m.start(), m.end(), m.group(0).casefold()) for m in self.WORD.finditer(text)]
        out: list[str] = []
        position = index = 0
        while index < len(spans):
            for size in range(min(self.longest, len(spans) - index), 0, -1):
                words = tuple(span[2] for span in spans[index : index + size])
                original = self.names.get(words)
                if original is not None:
                    start, end = spans[index][0], spans[index + size - 1][1]
                    out.append(text[position:start])
                    out.append(pseudonym(original))
                    position, index = end, index + size
                    break
            else:
                index += 1
        out.append(text[position:])
        return "".join(out)
