"""Languages and message catalogues: gettext ``.po`` files read directly by Babel.

Reading the ``.po`` text at start-up (instead of compiled ``.mo`` files) means there is no
build step to forget and nothing generated to commit. Message ids are symbolic keys
(``splash.accept``), so every visible word, English included, lives in a catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locales"
DOMAIN = "portal"
#: (language tag used in HTML and URLs, gettext locale directory, own name for the switcher)
LANGUAGES: tuple[tuple[str, str, str], ...] = (
    ("vi", "vi", "Tiếng Việt"),
    ("en", "en", "English"),
    ("ko", "ko", "한국어"),
    ("zh-Hans", "zh_Hans", "简体中文"),
    ("ja", "ja", "日本語"),
)
TAGS = tuple(tag for tag, _, _ in LANGUAGES)
FALLBACK = "en"


@cache
def catalogue(tag: str) -> dict[str, str]:
    """msgid → translation for one language (untranslated entries are left out)."""
    directory = dict((t, d) for t, d, _ in LANGUAGES)[tag]
    path = LOCALE_DIR / directory / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as fh:
        cat = read_po(fh, locale=directory)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


def translator(tag: str) -> Callable[..., str]:
    """``_(key, **fmt)`` for templates: the language's text, else English, else the key."""
    own, fallback = catalogue(tag), catalogue(FALLBACK)

    def gettext(key: str, **fmt: object) -> str:
        text = own.get(key) or fallback.get(key) or key
        return text.format(**fmt) if fmt else text

    return gettext


def normalise(tag: str | None) -> str | None:
    """Map a BCP 47 tag to one we serve: ``zh-CN``/``zh-TW``/``zh`` → ``zh-Hans`` etc."""
    if not tag:
        return None
    primary = tag.strip().lower().replace("_", "-").split("-")[0]
    for ours in TAGS:
        if ours.lower().split("-")[0] == primary:
            return ours
    return None


def negotiate(accept_language: str | None, default: str = FALLBACK) -> str:
    """Best language for an ``Accept-Language`` header (RFC 9110 q-values)."""
    if not accept_language:
        return default
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(accept_language[:512].split(",")):
        lang, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ours = normalise(lang)
        if ours and q > 0:
            ranked.append((-q, index, ours))
    return min(ranked)[2] if ranked else default
