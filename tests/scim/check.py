"""Run scim2-tester's compliance checks against a SCIM 2.0 service provider.

    python check.py BASE_URL TOKEN [--allow FILE]

BASE_URL is the SCIM root (for jitgate, https://host/.jitgate/scim/v2); TOKEN is sent as
`Authorization: Bearer TOKEN`. Prints one line per check (status, title, reason), then a count
per status. Exits 1 when a check ended ERROR or CRITICAL and its title is not in the allow
file, or when discovery failed so that no per-resource check ran; 0 otherwise. The allow file
holds one check title per line; `#` starts a comment (say why the check may fail). Beware:
the checks create, change and delete Users and Groups on the server.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status
from scim2_tester import check_server

FAILING = (Status.ERROR, Status.CRITICAL)


def read_allow_file(path: Path) -> set[str]:
    """The check titles listed in an allow file, without comments and blank lines."""
    titles = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        title = line.split("#", 1)[0].strip()
        if title:
            titles.add(title)
    return titles


def one_line(text: str | None) -> str:
    """Reasons may span lines (PATCH checks print values): keep one line per check."""
    return " | ".join(part.strip() for part in (text or "").splitlines() if part.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", metavar="BASE_URL", help="the SCIM root URL")
    parser.add_argument("token", metavar="TOKEN", help="the bearer token")
    parser.add_argument(
        "--allow",
        type=Path,
        metavar="FILE",
        help="check titles allowed to end ERROR or CRITICAL, one a line",
    )
    args = parser.parse_args()
    allowed = read_allow_file(args.allow) if args.allow else set()

    http = httpx2.Client(
        base_url=args.base_url,
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=30,
    )
    with http:
        results = check_server(SyncSCIMClient(http))

    counts: Counter[str] = Counter()
    failed = []
    allowed_seen = set()
    for result in results:
        status = result.status.name
        counts[status] += 1
        title = result.title or "?"
        where = f"[{result.resource_type}] " if result.resource_type else ""
        print(f"{status:<10} {where}{title}: {one_line(result.reason)}")
        if result.status in FAILING:
            if title in allowed:
                allowed_seen.add(title)
            else:
                failed.append(f"{where}{title}")

    print()
    print(", ".join(f"{counts[s.name]} {s.name}" for s in Status if counts[s.name]))
    print(f"{len(results)} checks")
    for title in sorted(allowed - allowed_seen):
        print(f"note: allowed check {title!r} did not fail; it can leave the allow file")
    if not any(result.resource_type for result in results):
        # scim2-tester runs the per-resource checks only once discovery described the server.
        print("no User or Group check ran: discovery failed, see the checks above")
        return 1
    if failed:
        print(f"{len(failed)} checks failed that are not allowed:")
        for name in failed:
            print(f"  {name}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
