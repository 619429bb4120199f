"""The machine's own apt sources for a Debian suite: image builds use no other network."""
from __future__ import annotations

from pathlib import Path

from controller.core.errors import ImageError


def _one_line(text: str) -> list[tuple[str, str, list[str]]]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        parts = line.split()[1:]
        if parts and parts[0].startswith("["):  # options like [signed-by=...]
            while parts and not parts[0].endswith("]"):
                parts.pop(0)
            parts.pop(0)
        if len(parts) >= 3:
            out.append((parts[0], parts[1], parts[2:]))
    return out


def _deb822(text: str) -> list[tuple[str, str, list[str]]]:
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.append((uri, suite, fields.get("components", "main").split()))
    return out


def host_sources(suite: str, etc_apt: Path = Path("/etc/apt")) -> str:
    """sources.list lines of the host that serve `suite` (and -updates, -security)."""
    entries: list[tuple[str, str, list[str]]] = []
    files = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        entries += _deb822(text) if f.suffix == ".sources" else _one_line(text) if f.suffix in (".list", "") else []
    lines, seen = [], set()
    for uri, s, comps in entries:
        if s == suite or s.startswith(suite + "-") or s.startswith(suite + "/"):
            line = f"deb {uri} {s} {' '.join(comps)}"
            if line not in seen:
                seen.add(line)
                lines.append(line)
    if not lines:
        raise ImageError("recipe.suite", f"no apt source for '{suite}' on this machine ({etc_apt})", "NoAptSource")
    return "\n".join(lines) + "\n"
