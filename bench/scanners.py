"""Compare pickle scanners on the test corpora: the registry's own (introspect), picklescan,
modelscan and fickling. Run by hand, not in the test suite:

    .venv/bin/pip install -e '.[bench]'          # picklescan, modelscan, fickling
    .venv/bin/python -m bench.scanners           # from the repository root
    .venv/bin/python -m bench.scanners --no-wrappers --scanners registry,picklescan

For each scanner: how many malicious files it caught (anything but a clean verdict: the
registry's quarantined, review and failed all count, and so does another tool's error), how
many benign files it flagged, and which malicious files it missed. A scanner that is not
installed prints "not installed". No scanner here unpickles: each only parses the files.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EXTENSIONS = {"pkl": ".pkl", "joblib": ".joblib", "pt": ".pt", "artifact": ".zip", "h5": ".h5"}


def _file_name(index: int, sample) -> str:
    extension = EXTENSIONS.get(sample.kind) or (".zip" if sample.data[:2] == b"PK" else ".bin")
    return f"{index:05d}{extension}"


# --- the scanners: each returns (caught: bool, label: str) for a file on disk -------------------

def registry_scanner():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    from registry.introspection.dispatch import introspect

    def scan(path: Path, sample):
        data = path.read_bytes()
        report = introspect(sample.kind, io.BytesIO(data), size=len(data))
        return report.status != "ready", report.status

    return scan


def picklescan_scanner():
    from picklescan.scanner import scan_file_path  # what `picklescan --path FILE` runs

    def scan(path: Path, sample):
        result = scan_file_path(str(path))
        if result.scan_err:
            return True, "error"
        if result.infected_files or result.issues_count:
            return True, "dangerous"
        return False, "suspicious-only" if getattr(result, "suspicious_count", 0) else "clean"

    return scan


def modelscan_scanner():
    import logging

    from modelscan.modelscan import ModelScan
    from modelscan.settings import DEFAULT_SETTINGS

    logging.getLogger("modelscan").setLevel(logging.CRITICAL)

    def scan(path: Path, sample):
        scanner = ModelScan(settings=DEFAULT_SETTINGS)  # as `modelscan -p FILE`
        scanner.scan(str(path))
        if scanner.issues.all_issues:
            return True, "issues"
        if scanner.errors:
            return True, "error"
        return False, "skipped" if scanner.skipped and not scanner.scanned else "clean"

    return scan


def fickling_scanner():
    import fickling

    def scan(path: Path, sample):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # fickling prints warnings about odd streams
                safe = fickling.is_likely_safe(str(path))
        except Exception as error:  # not a pickle fickling can read: it cannot vouch for it
            return True, f"error:{type(error).__name__}"
        return (not safe), ("likely-safe" if safe else "unsafe")

    return scan


# Verdicts that say "could not read it" rather than "found something".
_ERROR_LABELS = {"failed", "error"}

SCANNERS = {
    "registry": registry_scanner,
    "picklescan": picklescan_scanner,
    "modelscan": modelscan_scanner,
    "fickling": fickling_scanner,
}


# --- running ------------------------------------------------------------------------------------

def _write(folder: Path, samples) -> list[tuple[Path, object]]:
    files = []
    for index, sample in enumerate(samples):
        path = folder / _file_name(index, sample)
        path.write_bytes(sample.data)
        files.append((path, sample))
    return files


def _run(scan, files) -> tuple[list, list, Counter, float]:
    """(samples passed as clean, samples flagged, verdict counts, seconds)."""
    clean, flagged, labels = [], [], Counter()
    start = time.perf_counter()
    for path, sample in files:
        try:
            caught, label = scan(path, sample)
        except Exception as error:  # a crash is no clean verdict
            caught, label = True, f"crash:{type(error).__name__}"
        labels[label] += 1
        (flagged if caught else clean).append(sample)
    return clean, flagged, labels, time.perf_counter() - start


def _grouped(samples) -> list[str]:
    """Misses with their wrappers folded: "runner/os-system @ h5-userblock, prefixed-other"."""
    groups: dict[str, list[str]] = defaultdict(list)
    for sample in samples:
        base, _, wrapper = sample.name.partition("@")
        groups[base].append(wrapper or "raw")
    return [f"{base} @ {', '.join(wrappers)}" for base, wrappers in groups.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scanners", default=",".join(SCANNERS), help="comma-separated: " + ", ".join(SCANNERS))
    parser.add_argument("--no-wrappers", action="store_true", help="only the raw malicious pickles")
    parser.add_argument("--misses", type=int, default=-1, help="misses listed per scanner (-1: all)")
    args = parser.parse_args(argv)

    import warnings

    warnings.simplefilter("ignore")
    from tests.corpus.benign import benign_corpus
    from tests.corpus.malicious import malicious_corpus

    malicious = malicious_corpus(include_wrapped=not args.no_wrappers)
    benign = benign_corpus()
    print(f"corpus: {len(malicious)} malicious, {len(benign)} benign files; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    rows, miss_lists = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-scanners-") as folder:
        bad_dir, good_dir = Path(folder, "malicious"), Path(folder, "benign")
        bad_dir.mkdir()
        good_dir.mkdir()
        bad_files, good_files = _write(bad_dir, malicious), _write(good_dir, benign)
        for name in args.scanners.split(","):
            try:
                scan = SCANNERS[name]()
            except ImportError:
                rows.append((name, "not installed", "", "", "", ""))
                continue
            misses, _, labels, seconds_bad = _run(scan, bad_files)
            _, alarms, _, seconds_good = _run(scan, good_files)
            errors = sum(count for label, count in labels.items() if label in _ERROR_LABELS or
                         label.startswith(("error", "crash")))
            rows.append((name, f"{len(bad_files) - len(misses)} / {len(bad_files)}", str(errors),
                         f"{len(alarms)} / {len(good_files)}", f"{seconds_bad + seconds_good:.1f}",
                         ", ".join(f"{label} {count}" for label, count in labels.most_common())))
            miss_lists[name] = (misses, alarms)

    header = ("scanner", "malicious caught", "of which errors", "benign false alarms", "seconds",
              "verdicts on malicious files")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    for name, (misses, alarms) in miss_lists.items():
        for what, samples in (("malicious files missed", misses), ("benign files flagged", alarms)):
            lines = _grouped(samples) if what.startswith("malicious") else [sample.name for sample in samples]
            shown = lines if args.misses < 0 else lines[:args.misses]
            print(f"\n{name}: {len(samples)} {what}" + (f" ({len(lines)} payloads)" if lines is not None
                                                           and what.startswith("malicious") else ""))
            for line in shown:
                print(f"  {line}")
            if len(shown) < len(lines):
                print(f"  ... {len(lines) - len(shown)} more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
