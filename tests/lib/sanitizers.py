"""Sanitizer reports in daemon logs. A sanitizer build of ricochetd writes
AddressSanitizer, LeakSanitizer (at exit, after SIGTERM) and UBSan reports
to its stderr, which the tests send to the daemon's log; a test that stops
its daemons looks there, so that a leak or an overflow fails the test even
when the behaviour it checks was right."""

MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def report_lines(text, label):
    """The report lines of one log's text, each prefixed with label."""
    return [f"{label}: {line.rstrip()}" for line in text.splitlines() if any(m in line for m in MARKERS)]


def in_files(paths):
    """{label: path} -> the report lines of every file that exists."""
    found = []
    for label, path in sorted(paths.items()):
        try:
            with open(path, errors="replace") as f:
                found += report_lines(f.read(), label)
        except (FileNotFoundError, NotADirectoryError):
            pass
    return found
