"""English text analysis for the embedded BM25 index: tokenise, lowercase, drop stopwords, stem.

It mirrors OpenSearch's ``english`` analyzer (standard tokenizer, possessive filter,
lowercase, Lucene's English stop set, stemming) so that the embedded and OpenSearch backends
rank lexically alike (identical BM25 scores on the same data). Measured on SciFact train
(benchmarks/retrieval_scifact.py, BM25 nDCG@10): stemming is worth +0.035 (0.655 -> 0.690);
Snowball vs Porter, stopwords on/off and dropping one-character tokens all move it by
<= 0.002, so the settings follow OpenSearch (keep one-character tokens and numbers such as
"p53", "IL-6", "type 2").

Chinese, Japanese and Korean are written without spaces, so ``\\w+`` would make a whole
sentence one term. Runs of CJK characters are instead indexed as overlapping bigrams plus
unigrams (what OpenSearch's ``cjk_bigram`` filter with ``output_unigrams`` emits, used by the
OpenSearch backend's ``content.cjk`` field): bigrams match words, unigrams keep one-character
queries working. Text without CJK characters takes the original path unchanged.

    >>> EnglishAnalyzer()("The mice's tumours are growing")
    ['mice', 'tumour', 'grow']
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

import Stemmer

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, which OpenSearch's `english` analyzer uses.
LUCENE_ENGLISH_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

_TOKEN = re.compile(r"\w+", re.UNICODE)
_POSSESSIVE = re.compile(r"['\u2019][sS]\b")
# Han (with extensions and compatibility ideographs), Hiragana, Katakana (+ half-width), Hangul.
_CJK_CHARS = ("\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
              "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f")
_CJK = re.compile(f"[{_CJK_CHARS}]")
_CJK_RUN = re.compile(f"[{_CJK_CHARS}]+")


def has_cjk(text: str) -> bool:
    """Whether `text` holds Chinese, Japanese or Korean script, which whitespace does not split into
    words: both backends then also match it as character bigrams."""
    return _CJK.search(text) is not None


class EnglishAnalyzer:
    """Callable ``text -> list[str]`` of index terms; settings are data (``to_dict``)."""

    def __init__(self, *, stemmer: str | None = "english", stopwords: bool = True,
                 min_token_length: int = 1) -> None:
        self.stemmer_name = stemmer
        self.use_stopwords = stopwords
        self.min_token_length = min_token_length
        self._stemmer = Stemmer.Stemmer(stemmer) if stemmer else None
        self._stem = lru_cache(maxsize=200_000)(self._stemmer.stemWord) if self._stemmer else None

    def __call__(self, text: str) -> list[str]:
        if has_cjk(text):
            return self._mixed(text)
        return self._words(text)

    def _mixed(self, text: str) -> list[str]:
        """Text with CJK runs: the runs become bigrams and unigrams, the rest is analysed as English."""
        text = unicodedata.normalize("NFKC", text)  # full-width Latin -> ASCII, half-width kana -> full
        terms: list[str] = []
        position = 0
        for run in _CJK_RUN.finditer(text):
            terms += self._words(text[position:run.start()])
            chars = run.group()
            for i, char in enumerate(chars):
                terms.append(char)
                if i + 1 < len(chars):
                    terms.append(chars[i:i + 2])
            position = run.end()
        terms += self._words(text[position:])
        return terms

    def _words(self, text: str) -> list[str]:
        words = _TOKEN.findall(_POSSESSIVE.sub("", text).lower())
        words = [w.replace("_", "") for w in words]
        if self.use_stopwords:
            words = [w for w in words if w not in LUCENE_ENGLISH_STOPWORDS]
        words = [w for w in words if len(w) >= self.min_token_length]
        if self._stem is not None:
            words = [self._stem(w) for w in words]
        return words

    def to_dict(self) -> dict[str, Any]:
        return {"stemmer": self.stemmer_name, "stopwords": self.use_stopwords,
                "min_token_length": self.min_token_length}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnglishAnalyzer:
        return cls(**data)
