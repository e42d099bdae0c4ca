"""JAAS login configuration files, as the JVM's default ``ConfigFile`` reads them.

ZooKeeper takes its SASL users and credentials from the file named by
``-Djava.security.auth.login.config``.  The format::

    // comments: // and /* ... */ (not #)
    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
            user_bob="bob-secret"
            user_super="admin-secret";
    };
    QuorumServer { ... };

A file holds sections (application names, case-sensitive, each at most once); a section
holds login modules, each ``<class> <flag> [key=value ...];``, flag one of required,
requisite, sufficient, optional (any case); names and values are words or quoted strings
(backslash escapes as in Java); a later option of the same name wins.  The tokenizer
follows the JVM's (see `_tokens`), so a file Java rejects is rejected here too.  ``${property}`` expansion is not supported: such a value
is refused rather than passed on unexpanded.

This module only parses; what a section means (users for DIGEST-MD5, a client's
credentials, Kerberos) is up to the caller.  It is used by client SASL and meant for
quorum SASL as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = [
    "DIGEST_LOGIN_MODULE",
    "KRB5_LOGIN_MODULE",
    "JaasConfig",
    "JaasError",
    "JaasSection",
    "LoginModule",
    "load_jaas",
    "parse_jaas",
]

DIGEST_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"
KRB5_LOGIN_MODULE = "com.sun.security.auth.module.Krb5LoginModule"
FLAGS = ("required", "requisite", "sufficient", "optional")
# a JAAS file is small; anything bigger is not one
MAX_FILE_BYTES = 1 << 20


class JaasError(ValueError):
    """A JAAS file that cannot be used; the message names the file (and line)."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        where = path or "<jaas>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


@dataclass(frozen=True)
class LoginModule:
    class_name: str
    flag: str  # lower case
    options: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # options may hold secrets: never show their values
        return f"LoginModule({self.class_name!r}, {self.flag!r}, keys={sorted(self.options)})"


@dataclass(frozen=True)
class JaasSection:
    name: str
    modules: tuple[LoginModule, ...]

    def options(self, class_name: str | None = None) -> dict[str, str]:
        """The options of every module (of `class_name` when given), later ones winning."""
        merged: dict[str, str] = {}
        for m in self.modules:
            if class_name is None or m.class_name == class_name:
                merged.update(m.options)
        return merged

    def module_classes(self) -> list[str]:
        return [m.class_name for m in self.modules]

    def digest_users(self) -> dict[str, str]:
        """``user_<name>="<password>"`` options of the section: name -> password.

        ZooKeeper's server callback handler reads them from every module of the
        section, whatever its class."""
        users: dict[str, str] = {}
        for m in self.modules:
            for k, v in m.options.items():
                if k.startswith("user_"):
                    users[k[5:]] = v
        return users


@dataclass(frozen=True)
class JaasConfig:
    path: str | None
    sections: dict[str, JaasSection]

    def section(self, name: str) -> JaasSection | None:
        return self.sections.get(name)

    def require(self, name: str) -> JaasSection:
        s = self.sections.get(name)
        if s is not None and not s.modules:
            raise JaasError(f"section {name!r} has no login module", self.path)
        if s is None:
            have = ", ".join(sorted(self.sections)) or "none"
            raise JaasError(f"no section {name!r} (sections: {have})", self.path)
        return s


def load_jaas(path: str | os.PathLike[str]) -> JaasConfig:
    """Read and parse a JAAS file; JaasError (naming the file) if it cannot be used."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise JaasError(f"cannot read JAAS login configuration: {e.strerror or e}", p) from e
    if len(raw) > MAX_FILE_BYTES:
        raise JaasError("JAAS login configuration is larger than 1 MiB", p)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return parse_jaas(text, p)


# ------------------------------------------------------------------ tokenizer
# The JVM reads the file with a StreamTokenizer: words start with a letter, "$", "_", "*"
# or a character from U+00A0 up, and go on with those, digits, "." and "-"; a token that
# starts with a digit, "." or "-" is a number, which is no valid name or value (quote
# it); '"' quotes (not across lines; "'" is no quote); "/" starts a comment ("//", "/* */" and a
# lone "/" to the end of the line); "#" is no comment.  Checked against Java 17.
_PUNCT = "{};="
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "a": "\a", "v": "\v"}


def _word_start(c: str) -> bool:
    return c.isascii() and (c.isalpha() or c in "$_*") or ord(c) >= 0xA0


def _word_char(c: str) -> bool:
    return _word_start(c) or c in "0123456789.-"


class _Tok:
    __slots__ = ("kind", "value", "line")

    def __init__(self, kind: str, value: str, line: int) -> None:
        self.kind = kind  # "word", "string", "punct", "other", "eof"
        self.value = value
        self.line = line


def _tokens(text: str, path: str | None) -> list[_Tok]:
    out: list[_Tok] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c <= " ":
            i += 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:  # the JVM reads an unterminated comment as the end of the file
                break
            line += text.count("\n", i, j)
            i = j + 2
        elif c == "/":  # "//" or a lone "/": to the end of the line
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in _PUNCT:
            out.append(_Tok("punct", c, line))
            i += 1
        elif c == '"':
            quote, buf = c, []
            i += 1
            while True:
                if i >= n or text[i] == "\n":
                    raise JaasError("unterminated quoted string", path, line)
                c = text[i]
                if c == quote:
                    i += 1
                    break
                if c == "\\" and i + 1 < n and text[i + 1] != "\n":
                    e = text[i + 1]
                    if e in "01234567":  # octal, up to three digits
                        j = i + 1
                        while j < n and j < i + 4 and text[j] in "01234567":
                            j += 1
                        buf.append(chr(int(text[i + 1 : j], 8) & 0xFF))
                        i = j
                        continue
                    buf.append(_ESCAPES.get(e, e))
                    i += 2
                    continue
                buf.append(c)
                i += 1
            out.append(_Tok("string", "".join(buf), line))
        elif _word_start(c):
            j = i + 1
            while j < n and _word_char(text[j]):
                j += 1
            out.append(_Tok("word", text[i:j], line))
            i = j
        else:
            # a number or a character that is no part of a word: valid nowhere
            j = i + 1
            while j < n and _word_char(text[j]):
                j += 1
            out.append(_Tok("other", text[i:j], line))
            i = j
    out.append(_Tok("eof", "", line))
    return out


class _Parser:
    def __init__(self, text: str, path: str | None) -> None:
        self.path = path
        self.toks = _tokens(text, path)
        self.pos = 0

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def next(self) -> _Tok:
        t = self.toks[self.pos]
        if t.kind != "eof":
            self.pos += 1
        return t

    def error(self, what: str, t: _Tok) -> JaasError:
        got = "end of file" if t.kind == "eof" else repr(t.value)
        return JaasError(f"expected {what}, found {got}", self.path, t.line)

    def expect(self, punct: str) -> _Tok:
        t = self.next()
        if t.kind != "punct" or t.value != punct:
            raise self.error(repr(punct), t)
        return t

    def word(self, what: str) -> _Tok:
        t = self.next()
        if t.kind not in ("word", "string"):  # the JVM takes a quoted name as well
            raise self.error(what, t)
        return t

    def parse(self) -> JaasConfig:
        sections: dict[str, JaasSection] = {}
        while self.peek().kind != "eof":
            name = self.word("a section name")
            if name.value in sections:
                raise JaasError(f"section {name.value!r} is given more than once", self.path,
                                name.line)
            self.expect("{")
            modules = []
            while not (self.peek().kind == "punct" and self.peek().value == "}"):
                modules.append(self.module())
            self.expect("}")
            self.expect(";")
            # an empty section is no error to the JVM, but gives no login: as if absent
            sections[name.value] = JaasSection(name.value, tuple(modules))
        return JaasConfig(self.path, sections)

    def module(self) -> LoginModule:
        cls = self.word("a login module class")
        flag = self.word("a control flag (required, requisite, sufficient, optional)")
        if flag.value.lower() not in FLAGS:
            raise JaasError(f"invalid control flag {flag.value!r}", self.path, flag.line)
        options: dict[str, str] = {}
        while True:
            t = self.next()
            if t.kind == "punct" and t.value == ";":
                break
            if t.kind not in ("word", "string"):
                raise self.error("an option name or ';'", t)
            self.expect("=")
            v = self.next()
            if v.kind not in ("word", "string"):
                raise self.error(f"a value for option {t.value!r}", v)
            if "${" in v.value:
                raise JaasError(f"option {t.value!r}: ${{...}} property expansion is not "
                                "supported", self.path, v.line)
            options[t.value] = v.value
        return LoginModule(cls.value, flag.value.lower(), options)


def parse_jaas(text: str, path: str | None = None) -> JaasConfig:
    """Parse the text of a JAAS file; JaasError (with file and line) when malformed."""
    return _Parser(text, path).parse()
