"""Write KB entries back to the seed's file formats (FAQ JSON, Markdown procedures, CSV conversations).

The files written load back (rag/sources.py) into the same entries, in the same order, so
`rag kb export` → `rag kb import` → `rag kb export` gives identical files. PDF passages (accepted on
import) are written as JSON next to their original name (`guide.pdf.json`, `"kind": "pdf"`).
"""

from __future__ import annotations

import csv
import io
import json
from itertools import groupby
from pathlib import Path

import yaml

from rag.sources import Entry, slugify


def _faq_json(entries: list[Entry]) -> str:
    items = []
    for e in entries:
        question, *variants = e.questions or [""]
        item = {"id": e.id, "category": e.category, "title": e.title, "question": question,
                "variants": variants, "answer": e.answer, "tags": e.tags, "links": e.links}  # fmt: skip
        if e.kind == "pdf":
            item = {"kind": "pdf", "source": e.source, **item}
        items.append(item)
    return json.dumps(items, ensure_ascii=False, indent=2) + "\n"


def _markdown(entries: list[Entry]) -> str:
    doc_title = next((e.title.split(" — ", 1)[0] for e in entries if " — " in e.title), entries[0].title)
    first = entries[0]
    meta: dict = {"category": first.category}
    if first.tags:
        meta["tags"] = first.tags
    if first.links:
        meta["links"] = first.links
    lines = [f"# {doc_title}", ""]
    variants = {}
    for e in entries:
        heading = e.title.removeprefix(f"{doc_title} — ") if e.title != doc_title else doc_title
        if e.questions[1:]:
            variants[heading] = e.questions[1:]
        if e.title != doc_title:
            lines += [f"## {heading}", ""]
        lines += [e.answer, ""]
    if variants:
        meta["variants"] = variants
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
    return f"---\n{front}---\n" + "\n".join(lines)


def _csv(entries: list[Entry], stem: str) -> str:
    buffer = io.StringIO()
    with_variants = any(e.questions[1:] for e in entries)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "category", "question", "answer", *(["variants"] if with_variants else [])])
    prefix = f"conv-{slugify(stem)}-"
    for e in entries:
        row = [e.id.removeprefix(prefix), e.category, e.questions[0] if e.questions else e.title, e.answer]
        writer.writerow(row + (["\n".join(e.questions[1:])] if with_variants else []))
    return buffer.getvalue()


def export_target(entry: Entry) -> str:
    """Relative path an entry is written to."""
    if entry.kind == "pdf":
        return f"{entry.source}.json"
    if entry.kind == "faq" and not entry.source.endswith(".json"):
        return f"faq/{slugify(entry.category)}.json"
    return entry.source


def render_files(entries: list[Entry]) -> dict[str, str]:
    """File path (relative) -> content for a list of entries, in KB order."""
    files: dict[str, str] = {}
    ordered = sorted(enumerate(entries), key=lambda pair: (export_target(pair[1]), pair[0]))
    for target, group in groupby(ordered, key=lambda pair: export_target(pair[1])):
        items = [e for _, e in group]
        suffix = Path(target).suffix.lower()
        if suffix == ".md":
            files[target] = _markdown(items)
        elif suffix == ".csv":
            files[target] = _csv(items, Path(target).stem)
        else:
            files[target] = _faq_json(items)
    return files


def write_files(entries: list[Entry], out_dir: Path) -> list[Path]:
    """Write the KB under out_dir (created); returns the files written."""
    written = []
    for rel, content in render_files(entries).items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
