"""JUnit XML of a rehearsal: one test case per image and per step, with the failure's message
and the controller log's tail."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from controller.core.files import atomic_write
from controller.rehearse.runner import Outcome


def junit_xml(o: Outcome) -> str:
    cases = o.results
    failed = sum(r.status == "failed" for r in cases)
    errors = sum(r.status == "error" for r in cases)
    skipped = sum(r.status == "skipped" for r in cases)
    wall = (o.ended or o.started) - o.started
    suites = ET.Element("testsuites", name="scaleset rehearse", tests=str(len(cases)), failures=str(failed),
                        errors=str(errors), skipped=str(skipped), time=f"{wall:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=o.scenario, tests=str(len(cases)), failures=str(failed),
                          errors=str(errors), skipped=str(skipped), time=f"{wall:.3f}", file=o.file)
    for r in cases:
        name = r.title if r.index < 0 else f"{r.index + 1:02d} {r.title}"
        case = ET.SubElement(suite, "testcase", classname=f"rehearse.{o.scenario}", name=name,
                             time=f"{r.seconds:.3f}", file=o.file, line=str(r.line))
        if r.status in ("failed", "error"):
            el = ET.SubElement(case, "failure" if r.status == "failed" else "error", message=r.message[:1000],
                               type="ExpectationNotMet" if r.status == "failed" else "LabError")
            el.text = r.message + ("\n--- controller log (tail) ---\n" + r.log if r.log else "")
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", message="not run: an earlier step failed")
        if r.message and r.status == "passed":
            ET.SubElement(case, "system-out").text = r.message
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(o: Outcome, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, junit_xml(o), 0o644)
