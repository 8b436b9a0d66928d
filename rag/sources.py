"""Knowledge-base loaders: FAQ JSON, Markdown procedures (split by headings), PDF and CSV."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from rag.text import fold

DEFAULT_LINKS = {
    "faq": "https://mobile.free.fr/assistance/",
    "espace_abonne": "https://mobile.free.fr/moncompte/",
    "contact": "https://mobile.free.fr/assistance/contact.html",
}


@dataclass
class Entry:
    """One answerable unit of the KB: a FAQ entry, a procedure section, a PDF passage, a past answer."""

    id: str
    title: str
    answer: str
    category: str = "général"
    questions: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    source: str = ""
    kind: str = "faq"

    def to_dict(self) -> dict:
        """Plain dict for JSON metadata."""
        return asdict(self)


_KIND_LABELS = {"conversation": "Échange avec le service client", "pdf": "Document"}
_CATEGORY_URLS = {"résiliation": DEFAULT_LINKS["espace_abonne"], "facturation": DEFAULT_LINKS["espace_abonne"]}


def customer_label(entry: Entry) -> str:
    """A title a customer can read for a source: the FAQ question or procedure heading; a past
    conversation (whose title is another customer's message) becomes "Échange avec le service client
    (facturation)". Never the internal id."""
    if entry.kind in _KIND_LABELS and entry.kind != "pdf":
        return f"{_KIND_LABELS[entry.kind]} ({entry.category})"
    return entry.title.strip() or _KIND_LABELS.get(entry.kind, "Aide Free Mobile")


def customer_url(entry: Entry) -> str:
    """The page a source links to: its own first link, else the help page of its topic."""
    return entry.links[0] if entry.links else _CATEGORY_URLS.get(entry.category, DEFAULT_LINKS["faq"])


class SourceError(ValueError):
    """A KB file that cannot be read; the message names the file and the problem."""


def slugify(text: str) -> str:
    """ASCII slug for ids ("Délais de prise en charge" -> "delais-de-prise-en-charge")."""
    return re.sub(r"[^a-z0-9]+", "-", fold(text)).strip("-")[:60] or "section"


def load_faq_json(path: Path, root: Path) -> list[Entry]:
    """Read a JSON array of {id, question, answer, category, tags, variants?, title?, links?}."""
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: JSON invalide ({exc})") from exc
    if not isinstance(items, list):
        raise SourceError(f"{path}: a JSON array of FAQ entries is expected")
    entries = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise SourceError(f"{path}: entry {n} is not a JSON object")
        kind = item.get("kind", "faq")  # "pdf": a PDF passage exported by `rag kb export` (no question)
        missing = [k for k in ("question", "answer") if not str(item.get(k, "")).strip() and (k, kind) != ("question", "pdf")]
        if missing:
            raise SourceError(f"{path}: entry {n} lacks {', '.join(missing)}")
        question = str(item.get("question", "")).strip()
        entries.append(
            Entry(
                id=str(item.get("id") or f"{path.stem}-{n + 1:03d}"),
                title=item.get("title") or question,
                answer=str(item["answer"]).strip(),
                category=item.get("category", "général"),
                questions=[q for q in [question, *item.get("variants", [])] if q.strip()],
                tags=list(item.get("tags", [])),
                links=list(item.get("links", [])),
                source=str(item.get("source") or path.relative_to(root)),
                kind=kind,
            )
        )
    return entries


def _front_matter(text: str) -> tuple[dict, str]:
    if text.startswith("---"):
        parts = text.split("---", 2)
        if len(parts) == 3:
            return yaml.safe_load(parts[1]) or {}, parts[2]
    return {}, text


def load_markdown(path: Path, root: Path) -> list[Entry]:
    """Split a Markdown procedure into one entry per `##`/`###` section (the H1 is the doc title)."""
    meta, body = _front_matter(path.read_text(encoding="utf-8"))
    doc_title = path.stem.replace("-", " ").capitalize()
    sections: list[tuple[str, list[str]]] = []
    current: tuple[str, list[str]] | None = None
    for line in body.splitlines():
        heading = re.match(r"^(#{1,3})\s+(.*\S)\s*$", line)
        if heading and len(heading.group(1)) == 1:
            doc_title = heading.group(2)
            current = (doc_title, [])
            sections.append(current)
        elif heading:
            current = (heading.group(2), [])
            sections.append(current)
        else:
            if current is None:
                current = (doc_title, [])
                sections.append(current)
            current[1].append(line)
    entries = []
    seen: set[str] = set()
    for title, lines in sections:
        text = "\n".join(lines).strip()
        if not text:
            continue
        slug = slugify(title)
        while slug in seen:
            slug += "-bis"
        seen.add(slug)
        full_title = title if title == doc_title else f"{doc_title} — {title}"
        entries.append(
            Entry(
                id=f"proc-{slugify(path.stem)}#{slug}",
                title=full_title,
                answer=text,
                category=meta.get("category", "assistance"),
                questions=[title, *(meta.get("variants") or {}).get(title, [])],  # variants: {heading: [...]}
                tags=list(meta.get("tags", [])),
                links=list(meta.get("links", [])),
                source=str(path.relative_to(root)),
                kind="procedure",
            )
        )
    return entries


def load_pdf(path: Path, root: Path) -> list[Entry]:
    """One entry per non-empty PDF page (text extracted with pypdf; long pages are chunked later)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, OSError) as exc:
        raise SourceError(f"{path}: PDF illisible ({exc})") from exc
    title = (reader.metadata.title if reader.metadata else None) or path.stem
    return [
        Entry(
            id=f"pdf-{slugify(path.stem)}-p{n}",
            title=f"{title} (page {n})",
            answer=re.sub(r"[ \t]+", " ", text),
            category="général",
            source=str(path.relative_to(root)),
            kind="pdf",
        )
        for n, text in enumerate(pages, start=1)
        if text
    ]


def load_csv(path: Path, root: Path) -> list[Entry]:
    """Past conversations exported as CSV with columns question, answer[, category, id]."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"question", "answer"} <= set(reader.fieldnames):
            raise SourceError(f"{path}: columns 'question' and 'answer' are required")
        rows = list(reader)
    return [
        Entry(
            id=f"conv-{slugify(path.stem)}-{row.get('id') or n}",
            title=row["question"].strip(),
            answer=row["answer"].strip(),
            category=row.get("category") or "général",
            questions=[row["question"].strip(), *[v for v in (row.get("variants") or "").splitlines() if v.strip()]],
            source=str(path.relative_to(root)),
            kind="conversation",
        )
        for n, row in enumerate(rows, start=1)
        if row.get("question", "").strip() and row.get("answer", "").strip()
    ]


LOADERS = {".json": load_faq_json, ".md": load_markdown, ".pdf": load_pdf, ".csv": load_csv}


def iter_source_files(kb_dir: Path) -> Iterator[Path]:
    """KB files in a stable order (sorted paths), so a rebuild sees the same input."""
    for path in sorted(kb_dir.rglob("*")):
        if path.is_file() and path.suffix.lower() in LOADERS and not path.name.startswith("."):
            yield path


def load_kb(kb_dir: Path) -> list[Entry]:
    """Load every supported file under kb_dir; ids must be unique across files."""
    if not kb_dir.is_dir():
        raise SourceError(f"Knowledge-base folder not found: {kb_dir}")
    entries: list[Entry] = []
    for path in iter_source_files(kb_dir):
        entries.extend(LOADERS[path.suffix.lower()](path, kb_dir))
    ids = [e.id for e in entries]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SourceError(f"Duplicate KB ids: {', '.join(dupes[:10])}")
    return entries


def split_text(text: str, size: int, overlap: int) -> list[str]:
    """Split on sentence boundaries into chunks of at most ~size chars sharing ~overlap chars."""
    if len(text) <= size:
        return [text]
    sentences = re.split(r"(?<=[.!?:])\s+|\n{2,}", text)
    chunks: list[str] = []
    current: list[str] = []
    for sentence in (s.strip() for s in sentences):
        if not sentence:
            continue
        while len(sentence) > size:  # a single very long sentence: hard split
            head, sentence = sentence[:size], sentence[size - overlap :]
            if current:
                chunks.append(" ".join(current))
                current = []
            chunks.append(head)
        if current and len(" ".join([*current, sentence])) > size:
            chunks.append(" ".join(current))
            kept: list[str] = []
            for prev in reversed(current):
                if len(" ".join([prev, *kept])) > overlap:
                    break
                kept.insert(0, prev)
            while kept and len(" ".join([*kept, sentence])) > size:  # overlap + sentence must still fit
                kept.pop(0)
            current = kept
        current.append(sentence)
    if current:
        chunks.append(" ".join(current))
    return chunks
