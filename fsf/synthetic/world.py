"""A seeded synthetic multilingual world: one concept inventory, seven languages.

The world follows the feasibility study's recipe (docs/synthetic.md): 77 concepts (4 topics
x (6 nouns, 3 verbs, 3 adjectives), generic 6/3/3, 8 proper names, 9 function concepts) and
seven languages that differ the way real ones do, in form, in order and in how much of
them the pretraining corpus holds (:data:`RESOURCES`):

| lang | word order | adjective | determiner | adposition | lexicon | resources |
|------|------------|-----------|------------|------------|---------|-----------|
| en   | SVO        | before    | before     | pre        | source | high |
| fk   | SVO        | before    | before     | pre        | en's forms with shifted letters | high |
| fr   | SVO        | after     | before     | pre        | own forms, 25% cognates | high |
| ja   | SOV        | before    | after      | post, PP first | own forms, no cognates | mid |
| cy   | VSO        | after     | before     | pre        | own forms, 25% cognates | mid |
| sw   | SVO        | after     | after      | pre        | own forms, 25% cognates | low |
| ur   | SOV        | before    | none       | post       | own forms, no cognates | low |

Every language except ``ja`` and ``ur`` shares the cognate forms of 25% of the content
concepts; all of them share the proper names and ".". A language's *linked* concepts
(:attr:`World.linked`) are the content concepts that the cross-lingual signals of the
pretraining corpus (translation pairs, code-switching) cover for it: all of them for a
high-resource language, fewer for mid and low ones, as real low-resource languages have
little parallel text and few dictionary entries. A sentence is first drawn as a
language-neutral :class:`Frame` and then realised in any language, which is how the parallel
dev/test sets are built. Everything is a pure function of the seed (``random.Random``
seeded with strings).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "CATEGORIES",
    "FUNCTION_CONCEPTS",
    "LANGUAGES",
    "NUM_TOPICS",
    "RESOURCES",
    "SOURCE_LANGUAGE",
    "Clause",
    "Frame",
    "Grammar",
    "NounPhrase",
    "Resources",
    "World",
]

SOURCE_LANGUAGE = "en"
LANGUAGES: tuple[str, ...] = ("en", "fk", "fr", "ja", "cy", "sw", "ur")
NUM_TOPICS = 4
CATEGORIES = ("N", "V", "A")
_PER_TOPIC = {"N": 6, "V": 3, "A": 3}
_GENERIC = {"N": 6, "V": 3, "A": 3}
_NUM_NAMES = 8
FUNCTION_CONCEPTS = ("DEF", "INDEF", "NEG", "CONJ", "P_IN", "P_WITH", "PUNCT", "PLUR", "PAST")
_COGNATE_SHARE = 0.25
_NO_COGNATES = frozenset({"ja", "ur"})
GENERIC_TOPIC = -1


@dataclass(frozen=True)
class Grammar:
    """Word-order parameters of one language."""

    order: str  # "SVO", "SOV" or "VSO"
    adj_after_noun: bool = False
    det_after_noun: bool = False
    postpositions: bool = False
    pp_first: bool = False
    neg_after_verb: bool = False
    tense_before_verb: bool = False
    no_det: bool = False  # no articles: DEF / INDEF are not realised


GRAMMARS: dict[str, Grammar] = {
    "en": Grammar("SVO"),
    "fk": Grammar("SVO"),
    "fr": Grammar("SVO", adj_after_noun=True),
    "ja": Grammar(
        "SOV", det_after_noun=True, postpositions=True, pp_first=True, neg_after_verb=True
    ),
    "cy": Grammar("VSO", adj_after_noun=True, tense_before_verb=True),
    "sw": Grammar("SVO", adj_after_noun=True, det_after_noun=True, tense_before_verb=True),
    "ur": Grammar("SOV", postpositions=True, no_det=True),
}


@dataclass(frozen=True)
class Resources:
    """How much of a language the pretraining corpus holds.

    ``text_share``: its monolingual sentences, relative to a high-resource language;
    ``linked_share``: the share of its content concepts (per topic and category) that the
    cross-lingual signals cover: only those appear in its translation pairs and only those
    are code-switched into or out of it (cognates are shared forms and linked anyway);
    ``pair_weight``: how often it is drawn for a translation pair, relative to a
    high-resource language."""

    level: str  # "high", "mid" or "low"
    text_share: float
    linked_share: float
    pair_weight: float


_HIGH = Resources("high", 1.0, 1.0, 1.0)
_MID = Resources("mid", 0.5, 0.75, 0.5)
_LOW = Resources("low", 0.2, 0.5, 0.2)
RESOURCES: dict[str, Resources] = {
    "en": _HIGH,
    "fk": _HIGH,
    "fr": _HIGH,
    "ja": _MID,
    "cy": _MID,
    "sw": _LOW,
    "ur": _LOW,
}

# Letters each language builds its word forms from (its "phonotactics").
_ONSETS = {
    "en": ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "br"],
    "fr": ["b", "ch", "d", "f", "g", "j", "l", "m", "n", "p", "r", "s", "t", "v", "gr", "pl"],
    "ja": ["k", "s", "sh", "t", "ch", "n", "h", "m", "y", "r", "w", "g", "z", "b", "p"],
    "cy": ["b", "c", "d", "dd", "f", "ff", "g", "ll", "m", "n", "rh", "th", "w", "gw", "cr"],
    "sw": ["b", "ch", "d", "f", "h", "j", "k", "m", "mb", "nd", "ng", "ny", "w", "z", "kw"],
    "ur": ["bh", "d", "dh", "g", "gh", "j", "k", "kh", "l", "m", "n", "ph", "r", "s", "sh"],
    "cog": ["b", "d", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"],
}
_NUCLEI = {
    "en": ["a", "e", "i", "o", "u", "ea", "oo"],
    "fr": ["a", "e", "i", "o", "ou", "eau", "ai"],
    "ja": ["a", "i", "u", "e", "o"],
    "cy": ["a", "e", "i", "o", "u", "w", "y", "ae"],
    "sw": ["a", "e", "i", "o", "u"],
    "ur": ["a", "aa", "i", "ii", "u", "e", "o"],
    "cog": ["a", "e", "i", "o", "u"],
}
_CODAS = {
    "en": ["", "", "", "n", "t", "ck", "sh", "ll"],
    "fr": ["", "", "", "n", "s", "l", "rt"],
    "ja": ["", "", "", "", "n"],
    "cy": ["", "", "n", "dd", "th", "ch", "l"],
    "sw": [""],
    "ur": ["", "", "n", "r", "l", "m"],
    "cog": ["", "", "n", "r", "s"],
}
# fk is en with every letter moved along this cycle: no fk form equals an en form.
_FK_SHIFT = str.maketrans(
    "abcdefghijklmnopqrstuvwxyz",
    "eptzilxnoqjrsfuwcvbyahkmgd",
)
_NAMES = ("Ana", "Boris", "Chen", "Dalia", "Emil", "Farah", "Goran", "Hana")


@dataclass(frozen=True)
class NounPhrase:
    """A noun phrase: a noun (or proper name) with optional determiner, adjective, plural."""

    head: str
    det: str | None = None
    adj: str | None = None
    plural: bool = False


@dataclass(frozen=True)
class Clause:
    """A clause: subject, verb, object, optional prepositional phrase, polarity and tense."""

    subj: NounPhrase
    verb: str
    obj: NounPhrase
    pp: tuple[str, NounPhrase] | None = None
    neg: bool = False
    past: bool = False


@dataclass(frozen=True)
class Frame:
    """A language-neutral sentence: a topic and one or two clauses."""

    topic: int
    clauses: tuple[Clause, ...]

    def content(self) -> set[str]:
        """The content concepts (nouns, verbs, adjectives) the sentence uses."""
        out: set[str] = set()
        for c in self.clauses:
            for np in (c.subj, c.obj) + ((c.pp[1],) if c.pp else ()):
                if not np.head.startswith("name"):
                    out.add(np.head)
                if np.adj:
                    out.add(np.adj)
            out.add(c.verb)
        return out


def _word(rng: random.Random, style: str, taken: set[str]) -> str:
    while True:
        n_syll = rng.choice((2, 2, 3)) if style != "ja" else rng.choice((2, 3, 3))
        w = "".join(
            rng.choice(_ONSETS[style]) + rng.choice(_NUCLEI[style]) for _ in range(n_syll)
        ) + rng.choice(_CODAS[style])
        if w not in taken:
            taken.add(w)
            return w


@dataclass
class World:
    """The concept inventory and the five lexicons and grammars, all derived from ``seed``."""

    seed: int = 0
    languages: tuple[str, ...] = LANGUAGES
    concepts: dict[str, tuple[str, int]] = field(init=False)  # id -> (category, topic)
    lexicon: dict[str, dict[str, str]] = field(init=False)  # lang -> concept -> form
    cognates: frozenset[str] = field(init=False)
    linked: dict[str, frozenset[str]] = field(init=False)  # lang -> linked content concepts

    def __post_init__(self) -> None:
        self.concepts = {}
        for t in range(NUM_TOPICS):
            for cat in CATEGORIES:
                for i in range(_PER_TOPIC[cat]):
                    self.concepts[f"t{t}_{cat}{i}"] = (cat, t)
        for cat in CATEGORIES:
            for i in range(_GENERIC[cat]):
                self.concepts[f"g_{cat}{i}"] = (cat, GENERIC_TOPIC)
        for i in range(_NUM_NAMES):
            self.concepts[f"name{i}"] = ("NAME", GENERIC_TOPIC)
        for f in FUNCTION_CONCEPTS:
            self.concepts[f] = ("F", GENERIC_TOPIC)
        rng = random.Random(f"fsf-synthetic-lexicon:{self.seed}")
        content = [c for c, (cat, _) in self.concepts.items() if cat in CATEGORIES]
        self.cognates = frozenset(rng.sample(content, round(_COGNATE_SHARE * len(content))))
        taken: set[str] = set()
        cognate_form = {c: _word(rng, "cog", taken) for c in sorted(self.cognates)}
        self.lexicon = {}
        for lang in self.languages:
            lex: dict[str, str] = {}
            for c, (cat, _) in self.concepts.items():
                if cat == "NAME":
                    lex[c] = _NAMES[int(c[4:])]
                elif c == "PUNCT":
                    lex[c] = "."
                elif c in self.cognates and lang not in _NO_COGNATES:
                    lex[c] = cognate_form[c]
                elif lang == "fk":
                    lex[c] = ""  # filled from en below
                else:
                    lex[c] = _word(rng, lang, taken)
            self.lexicon[lang] = lex
        if "fk" in self.lexicon:
            for c, form in self.lexicon["fk"].items():
                if form == "":
                    shifted = self.lexicon["en"][c].translate(_FK_SHIFT)
                    if shifted in taken:  # vanishingly rare; keep forms disjoint anyway
                        shifted = _word(rng, "en", taken).translate(_FK_SHIFT)
                    taken.add(shifted)
                    self.lexicon["fk"][c] = shifted
        self.linked = {lang: self._linked(lang) for lang in self.languages}

    def _linked(self, lang: str) -> frozenset[str]:
        """The content concepts the cross-lingual signals cover for ``lang``: its cognates,
        and ``linked_share`` of the others in every (topic, category) group."""
        share = RESOURCES[lang].linked_share
        rng = random.Random(f"fsf-synthetic-linked:{self.seed}:{lang}")
        has_cognates = lang not in _NO_COGNATES
        out = set(self.cognates) if has_cognates else set()
        for topic in (*range(NUM_TOPICS), GENERIC_TOPIC):
            for cat in CATEGORIES:
                own = [c for c in self.words(cat, topic) if not (has_cognates and c in out)]
                out.update(rng.sample(own, round(share * len(own))))
        return frozenset(out)

    def is_linked(self, concept: str, lang: str) -> bool:
        """Whether the cross-lingual signals cover ``concept`` in ``lang`` (function words
        and names always are)."""
        return self.concepts[concept][0] not in CATEGORIES or concept in self.linked[lang]

    # ------------------------------------------------------------------ inventory
    def words(self, cat: str, topic: int) -> list[str]:
        """Concept ids of category ``cat`` ("N", "V", "A") in ``topic`` (-1 = generic)."""
        return [c for c, (k, t) in self.concepts.items() if k == cat and t == topic]

    def topic_of(self, concept: str) -> int:
        """The topic of a concept, or -1 for generic and function concepts."""
        return self.concepts[concept][1]

    # ------------------------------------------------------------------ sampling
    def sample_frame(
        self,
        rng: random.Random,
        topic: int,
        p_topic: float,
        p_other: float,
        exclude: frozenset[str] = frozenset(),
        max_clauses: int = 2,
    ) -> Frame:
        """Draw a sentence about ``topic``.

        Each content slot is filled from ``topic`` with probability ``p_topic``, from another
        topic with ``p_other``, else from the generic words; concepts in ``exclude`` are never
        used (pair tasks use it so that the two sentences share no content word).
        """

        def content(cat: str) -> str:
            while True:
                r = rng.random()
                if r < p_topic:
                    t = topic
                elif r < p_topic + p_other:
                    t = rng.choice([x for x in range(NUM_TOPICS) if x != topic])
                else:
                    t = GENERIC_TOPIC
                c = rng.choice(self.words(cat, t))
                if c not in exclude:
                    return c

        def np(allow_name: bool) -> NounPhrase:
            if allow_name and rng.random() < 0.3:
                return NounPhrase(f"name{rng.randrange(_NUM_NAMES)}")
            return NounPhrase(
                content("N"),
                det=rng.choice(("DEF", "INDEF", None)),
                adj=content("A") if rng.random() < 0.4 else None,
                plural=rng.random() < 0.3,
            )

        clauses = []
        n = 2 if max_clauses > 1 and rng.random() < 0.3 else 1
        for i in range(n):
            pp = None
            if i == 0 and rng.random() < 0.4:
                pp = (rng.choice(("P_IN", "P_WITH")), np(allow_name=False))
            clauses.append(
                Clause(
                    subj=np(allow_name=True),
                    verb=content("V"),
                    obj=np(allow_name=True),
                    pp=pp,
                    neg=rng.random() < 0.2,
                    past=rng.random() < 0.4,
                )
            )
        return Frame(topic, tuple(clauses))

    # ------------------------------------------------------------------ realisation
    def linearize(self, frame: Frame, lang: str) -> list[str]:
        """The concept ids of ``frame`` in ``lang``'s word order."""
        return [c for c, _ in self.linearize_roles(frame, lang)]

    def linearize_roles(self, frame: Frame, lang: str) -> list[tuple[str, str | None]]:
        """:meth:`linearize` with the role of each word: ``"<clause>.<role>"`` with role
        ``subj``, ``obj`` or ``pp`` (a noun phrase's words, the adposition included in
        ``pp``) or ``verb`` (the verb and its tense and negation markers); None for the
        conjunction and the final punctuation. A noun phrase's words are contiguous."""
        g = GRAMMARS[lang]
        Words = list[tuple[str, str | None]]

        def np(p: NounPhrase, role: str) -> Words:
            if p.head.startswith("name"):
                return [(p.head, role)]
            out = [p.head] + (["PLUR"] if p.plural else [])
            if p.adj:
                out = [*out, p.adj] if g.adj_after_noun else [p.adj, *out]
            if p.det and not g.no_det:
                out = [*out, p.det] if g.det_after_noun else [p.det, *out]
            return [(c, role) for c in out]

        def clause(c: Clause, i: int) -> Words:
            vg = [c.verb]
            if c.past:
                vg = ["PAST", *vg] if g.tense_before_verb else [*vg, "PAST"]
            if c.neg:
                vg = [*vg, "NEG"] if g.neg_after_verb else ["NEG", *vg]
            v = [(x, f"{i}.verb") for x in vg]
            s, o = np(c.subj, f"{i}.subj"), np(c.obj, f"{i}.obj")
            core = {"SVO": s + v + o, "SOV": s + o + v, "VSO": v + s + o}[g.order]
            if c.pp is None:
                return core
            p, obj = c.pp
            adp = (p, f"{i}.pp")
            pp = [*np(obj, f"{i}.pp"), adp] if g.postpositions else [adp, *np(obj, f"{i}.pp")]
            return pp + core if g.pp_first else core + pp

        out: Words = []
        for i, c in enumerate(frame.clauses):
            if i:
                out.append(("CONJ", None))
            out += clause(c, i)
        return [*out, ("PUNCT", None)]

    def realize(self, frame: Frame, lang: str) -> str:
        """The sentence ``frame`` as text in ``lang`` (space-separated words)."""
        lex = self.lexicon[lang]
        return " ".join(lex[c] for c in self.linearize(frame, lang))

    def code_switch(
        self,
        frame: Frame,
        lang: str,
        rng: random.Random,
        p_word: float,
        others: Sequence[str] | None = None,
    ) -> str:
        """Realise ``frame`` in ``lang`` with each word swapped, with probability ``p_word``,
        for the same concept's word in a random other language (word-level code-switching).

        Only linked concepts switch (:meth:`is_linked` in both languages): a word that the
        cross-lingual signals do not cover for a language is never swapped into or out of it.
        """
        pool = [x for x in (others or self.languages) if x != lang]
        words = []
        for c in self.linearize(frame, lang):
            src = lang
            if rng.random() < p_word:
                src = rng.choice(pool)
                if not (self.is_linked(c, lang) and self.is_linked(c, src)):
                    src = lang
            words.append(self.lexicon[src][c])
        return " ".join(words)

    def vocabulary(self) -> list[str]:
        """Every surface form of every language, sorted (the word-level vocabulary)."""
        return sorted({w for lex in self.lexicon.values() for w in lex.values()})
